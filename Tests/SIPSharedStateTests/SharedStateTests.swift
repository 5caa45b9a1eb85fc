import SIPBytes
import SIPSecurity
@testable import SIPSharedState
import SIPTransport
import Testing

@Suite struct RESPTests {
    @Test func commandsAreArraysOfBulkStrings() {
        #expect(RESP.command(["SET", "k", "v1"]) == Array("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n".utf8))
    }

    @Test func everyReplyTypeParsesAndAPartialOneWaits() throws {
        let replies = "+PONG\r\n-ERR wrong\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$7\r\nmessage\r\n:1\r\n"
        var buffer = Array(replies.utf8)
        var values: [RESPValue] = []
        while let (value, used) = try RESP.parse(buffer) {
            values.append(value)
            buffer.removeFirst(used)
        }
        #expect(values == [.simple("PONG"), .error("ERR wrong"), .integer(42), .bulk(Array("abc".utf8)), .bulk(nil),
                           .array([.bulk(Array("message".utf8)), .integer(1)])])
        #expect(try RESP.parse(Array("$5\r\nab".utf8)) == nil, "a bulk string still arriving")
        #expect(try RESP.parse(Array("*3\r\n:1\r\n".utf8)) == nil, "an array still arriving")
    }

    @Test func lengthsBeyondTheBoundAreProtocolErrorsNotAllocations() {
        #expect(throws: RESP.ProtocolError.self) { try RESP.parse(Array("$99999999999\r\n".utf8), maxLength: 1 << 20) }
        #expect(throws: RESP.ProtocolError.self) { try RESP.parse(Array("?x\r\n".utf8)) }
    }
}

@Suite struct SharedBanTests {
    @Test func aBanKeyNamesItsSourceAndReadsBack() {
        var settings = SharedStateSettings()
        settings.keyPrefix = "prod:"
        let client = SharedStateClient(settings: settings, bans: SharedBans(), edgeID: "e1", log: { _ in })
        let source = EndpointAddress.parse("192.0.2.7", port: 5060)!
        let ban = RateLimiter.StartedBan(keyHigh: source.high, isIPv6: false, milliseconds: 5_000, step: 2)
        let key = client.key(for: ban)
        #expect(key.hasPrefix("prod:ban:4:"))
        let read = SharedStateClient.ban(fromKey: key, prefix: "prod:")
        #expect(read?.keyHigh == source.high && read?.isIPv6 == false)
        #expect(SharedStateClient.ban(fromKey: "other:ban:4:1", prefix: "prod:") == nil)
    }

    @Test func aSourceBannedElsewhereIsBannedHereForRegistersAndTheRest() {
        var configuration = RateLimitConfiguration()
        configuration.requestsPerWindow = 5
        configuration.registersPerWindow = 5
        var here = RateLimiter(configuration: configuration)
        var there = RateLimiter(configuration: configuration)
        let flooder = EndpointAddress.parse("192.0.2.7", port: 5060)!
        var now: UInt64 = 1_000
        for _ in 0..<40 {
            _ = there.check(flooder, isRegister: true, now: now)
            now += 1
        }
        let started = there.takeStartedBans()
        #expect(started.count == 1)
        #expect(started.first?.milliseconds == configuration.banMilliseconds)
        #expect(there.startedBans.isEmpty)
        #expect(here.check(flooder, isRegister: false, now: now) == .allow)
        here.impose(started[0], now: now)
        #expect(here.check(flooder, isRegister: true, now: now + 1) == .banned(step: 1))
        #expect(here.check(flooder, isRegister: false, now: now + 1) == .banned(step: 1))
        #expect(here.startedBans.isEmpty, "an imposed ban is not announced again")
        #expect(here.check(flooder, isRegister: false, now: now + configuration.banMilliseconds + 1) == .allow)
    }

    @Test func theBusiestSourcesAreReportedAndALimitSharedByTheEdgesApplies() {
        var limiter = RateLimiter(configuration: RateLimitConfiguration())
        limiter.countsSources = true
        let sources = ["192.0.2.1", "192.0.2.2", "2001:db8::1"].map { EndpointAddress.parse($0, port: 5060)! }
        for (source, requests) in zip(sources, [5, 3, 1]) {
            for index in 0..<requests { _ = limiter.check(source, isRegister: index % 2 == 0, now: 1_000) }
        }
        let busiest = limiter.takeBusiestSources(limit: 2)
        #expect(busiest.map(\.count) == [5, 3], "REGISTERs and the rest count together")
        #expect(busiest.first?.keyHigh == sources[0].high && busiest.first?.isIPv6 == false)
        #expect(limiter.takeBusiestSources(limit: 2).isEmpty, "a new interval starts empty")
        limiter.limitShared(RateLimiter.SourceCount(keyHigh: sources[2].high, isIPv6: true, count: 99), for: 1_000,
                            now: 2_000)
        #expect(limiter.check(sources[2], isRegister: false, now: 2_001) == .limited)
        #expect(limiter.check(sources[2], isRegister: true, now: 2_500) == .limited)
        #expect(limiter.check(sources[2], isRegister: false, now: 3_001) == .allow, "for one interval")
        #expect(limiter.check(sources[1], isRegister: false, now: 2_001) == .allow)
    }

    @Test func workersSeeEachRemoteBanOnceInOrder() {
        let exchange = SharedBans()
        let ban = RateLimiter.StartedBan(keyHigh: 1, isIPv6: false, milliseconds: 10, step: 1)
        #expect(exchange.latest == 0)
        exchange.deliver([ban, ban])
        let (first, upTo) = exchange.remoteBans(after: 0)
        #expect(first.count == 2 && upTo == 2 && exchange.latest == 2)
        exchange.deliver([ban])
        #expect(exchange.remoteBans(after: upTo).0.count == 1)
    }
}
