import SIPBytes
public import SIPSecurity
public import SIPTransport
import SIPUring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The one thread per process that talks to Redis: it stores and publishes the bans this edge's workers start
/// (a key with the ban's TTL, so an edge that starts or reconnects later loads the bans in force, and a message
/// on a channel, so running edges apply them within a poll interval), and hands the bans other edges publish to
/// the workers through ``SharedBans``. When Redis is gone or stops answering, the edge goes on with its local
/// state (every local limit still applies), says so once, and reconnects with backoff.
public final class SharedStateClient: Sendable {
    public let settings: SharedStateSettings
    public let bans: SharedBans
    /// This process, in what it publishes, so it skips its own messages.
    public let edgeID: String
    private let log: @Sendable (String) -> Void
    private let published = Atomic<Int>(0)
    private let received = Atomic<Int>(0)
    private let limited = Atomic<Int>(0)

    /// Replies later than this mean Redis is not answering (it may be stopped, not closed).
    static let replyTimeoutMilliseconds: Int32 = 1_000
    static let pollMilliseconds: Int32 = 50

    /// Requests per interval over which a source is limited on every edge (the window limit scaled to the
    /// interval); 0: rate limits are not shared.
    public let sharedLimitPerInterval: Int

    public init(settings: SharedStateSettings, bans: SharedBans, edgeID: String, sharedLimitPerInterval: Int = 0,
                log: @escaping @Sendable (String) -> Void) {
        self.sharedLimitPerInterval = sharedLimitPerInterval
        self.settings = settings
        self.bans = bans
        self.edgeID = edgeID
        self.log = log
    }

    public var bansPublished: Int { published.load(ordering: .relaxed) }
    public var bansReceived: Int { received.load(ordering: .relaxed) }
    /// Sources limited because the edges together saw too many requests from them.
    public var sourcesLimitedTogether: Int { limited.load(ordering: .relaxed) }

    var channel: String { settings.keyPrefix + "bans" }

    /// Runs until `stop`: connect, serve, and on any failure back off (0.5 s doubling to 5 s) and connect again.
    public func run(until stop: StopSignal) {
        guard let target = settings.redis else { return }
        var backoff: UInt64 = 500
        var wasUp: Bool?
        while !stop.isStopped {
            let reason = serve(target, until: stop, connected: {
                backoff = 500
                if wasUp != true { log("shared state: connected to \(target)") }
                wasUp = true
            })
            bans.isConnected = false
            if stop.isStopped { return }
            if wasUp != false { log("shared state: \(target) unavailable (\(reason)); serving on local state, retrying") }
            wasUp = false
            var waited: UInt64 = 0
            while waited < backoff && !stop.isStopped {
                usleep(50_000)
                waited += 50
            }
            backoff = min(backoff * 2, 5_000)
        }
    }

    /// One connected session; returns why it ended.
    private func serve(_ target: RedisTarget, until stop: StopSignal, connected: () -> Void) -> String {
        guard let commands = BlockingConnection(to: target.address, timeoutMilliseconds: Self.replyTimeoutMilliseconds),
              let subscription = BlockingConnection(to: target.address, timeoutMilliseconds: Self.replyTimeoutMilliseconds)
        else { return "connection refused or timed out" }
        var commandBuffer: [UInt8] = []
        var subscriptionBuffer: [UInt8] = []
        do {
            if let password = settings.password {
                _ = try call(commands, &commandBuffer, ["AUTH", password])
                _ = try call(subscription, &subscriptionBuffer, ["AUTH", password])
            }
            _ = try call(commands, &commandBuffer, ["SELECT", String(target.database)])
            _ = try call(subscription, &subscriptionBuffer, ["SUBSCRIBE", channel])
            try loadBansInForce(commands, &commandBuffer)
        } catch {
            return error.reason
        }
        bans.isConnected = true
        connected()
        var lastPing = MonotonicClock.milliseconds()
        var pendingReads: [UInt64] = []
        while !stop.isStopped {
            do {
                let local = bans.takeLocal()
                if !local.isEmpty { try share(local, commands, &commandBuffer) }
                if sharedLimitPerInterval > 0 {
                    for interval in try pushCounts(commands, &commandBuffer) where !pendingReads.contains(interval) {
                        pendingReads.append(interval)
                    }
                    pendingReads = try readDueTotals(pendingReads, commands, &commandBuffer)
                }
                guard subscription.receive(into: &subscriptionBuffer, timeoutMilliseconds: Self.pollMilliseconds) else {
                    return "subscription closed"
                }
                try takeMessages(&subscriptionBuffer)
                let now = MonotonicClock.milliseconds()
                if now - lastPing >= 1_000 {
                    // The subscription is silent when no edge bans anyone: a PING tells a stopped Redis apart.
                    _ = try call(commands, &commandBuffer, ["PING"])
                    lastPing = now
                }
            } catch {
                return error.reason
            }
        }
        return "stopping"
    }

    struct Failure: Error {
        let reason: String
    }

    /// Sends a command and waits (bounded) for its reply.
    private func call(_ connection: BlockingConnection, _ buffer: inout [UInt8],
                      _ arguments: [String]) throws(Failure) -> RESPValue {
        guard connection.send(RESP.command(arguments), timeoutMilliseconds: Self.replyTimeoutMilliseconds) else {
            throw Failure(reason: "\(arguments[0]) could not be sent")
        }
        return try reply(connection, &buffer, for: arguments[0])
    }

    private func reply(_ connection: BlockingConnection, _ buffer: inout [UInt8],
                       for command: String) throws(Failure) -> RESPValue {
        let deadline = MonotonicClock.milliseconds() + UInt64(Self.replyTimeoutMilliseconds)
        while true {
            do {
                if let (value, used) = try RESP.parse(buffer) {
                    buffer.removeFirst(used)
                    if case .error(let message) = value { throw Failure(reason: "\(command): \(message)") }
                    return value
                }
            } catch let error as RESP.ProtocolError {
                throw Failure(reason: error.reason)
            } catch let error as Failure {
                throw error
            } catch {
                throw Failure(reason: "\(error)")
            }
            let now = MonotonicClock.milliseconds()
            guard now < deadline else { throw Failure(reason: "no reply to \(command) within \(Self.replyTimeoutMilliseconds) ms") }
            guard connection.receive(into: &buffer, timeoutMilliseconds: Int32(deadline - now)) else {
                throw Failure(reason: "connection closed")
            }
        }
    }

    /// Stores each ban under its key with its length as TTL, and publishes it; the replies are read after all
    /// commands went out (one round trip for the lot).
    private func share(_ local: [RateLimiter.StartedBan], _ connection: BlockingConnection,
                       _ buffer: inout [UInt8]) throws(Failure) {
        var out: [UInt8] = []
        for ban in local {
            out += RESP.command(["SET", key(for: ban), edgeID, "PX", String(max(ban.milliseconds, 1))])
            out += RESP.command(["PUBLISH", channel, message(for: ban)])
        }
        guard connection.send(out, timeoutMilliseconds: Self.replyTimeoutMilliseconds) else {
            throw Failure(reason: "bans could not be sent")
        }
        for _ in 0..<(local.count * 2) { _ = try reply(connection, &buffer, for: "SET/PUBLISH") }
        published.wrappingAdd(local.count, ordering: .relaxed)
    }

    /// Adds the workers' busiest sources of each ended interval to that interval's hash in Redis (HINCRBY, so
    /// every edge's counts add up); returns the intervals pushed.
    private func pushCounts(_ connection: BlockingConnection, _ buffer: inout [UInt8]) throws(Failure) -> [UInt64] {
        let reports = bans.takeCounts()
        guard !reports.isEmpty else { return [] }
        var out: [UInt8] = []
        var replies = 0
        for (interval, sources) in reports {
            var totals: [String: Int] = [:]
            for source in sources { totals[field(source.keyHigh, source.isIPv6), default: 0] += source.count }
            let key = "\(settings.keyPrefix)rate:\(interval)"
            for (field, count) in totals {
                out += RESP.command(["HINCRBY", key, field, String(count)])
                replies += 1
            }
            out += RESP.command(["PEXPIRE", key, String(bans.intervalMilliseconds * 10)])
            replies += 1
        }
        guard connection.send(out, timeoutMilliseconds: Self.replyTimeoutMilliseconds) else {
            throw Failure(reason: "counts could not be sent")
        }
        for _ in 0..<replies { _ = try reply(connection, &buffer, for: "HINCRBY") }
        return Array(reports.keys)
    }

    /// Reads each interval's totals once every edge had time to add its counts (300 ms after the interval that
    /// follows it began), and limits on every worker the sources over the limit. Returns the reads not yet due.
    private func readDueTotals(_ intervals: [UInt64], _ connection: BlockingConnection,
                               _ buffer: inout [UInt8]) throws(Failure) -> [UInt64] {
        let now = WallClock.milliseconds()
        var waiting: [UInt64] = []
        for interval in intervals {
            guard now >= (interval + 1) * bans.intervalMilliseconds + Self.settleMilliseconds else {
                waiting.append(interval)
                continue
            }
            let totals = try call(connection, &buffer, ["HGETALL", "\(settings.keyPrefix)rate:\(interval)"])
            guard case .array(let items?) = totals else { continue }
            var over: [RateLimiter.SourceCount] = []
            var index = 0
            while index + 1 < items.count {
                defer { index += 2 }
                guard let name = items[index].text, let value = items[index + 1].text, let count = Int(value),
                      count > sharedLimitPerInterval, let source = Self.source(fromField: name) else { continue }
                over.append(RateLimiter.SourceCount(keyHigh: source.keyHigh, isIPv6: source.isIPv6, count: count))
            }
            bans.deliverLimits(over)
            limited.wrappingAdd(over.count, ordering: .relaxed)
        }
        return waiting
    }

    /// Time given to the other edges to push an interval's counts before its totals are read.
    static let settleMilliseconds: UInt64 = 300

    func field(_ keyHigh: UInt64, _ isIPv6: Bool) -> String {
        "\(isIPv6 ? "6" : "4"):\(String(keyHigh, radix: 16))"
    }

    static func source(fromField field: String) -> (keyHigh: UInt64, isIPv6: Bool)? {
        let parts = field.split(separator: ":")
        guard parts.count == 2, parts[0] == "4" || parts[0] == "6", let keyHigh = UInt64(parts[1], radix: 16) else {
            return nil
        }
        return (keyHigh, parts[0] == "6")
    }

    /// On connecting: every ban key still alive, with its remaining TTL.
    private func loadBansInForce(_ connection: BlockingConnection, _ buffer: inout [UInt8]) throws(Failure) {
        var cursor = "0"
        var loaded: [RateLimiter.StartedBan] = []
        repeat {
            let page = try call(connection, &buffer, ["SCAN", cursor, "MATCH", settings.keyPrefix + "ban:*", "COUNT", "1000"])
            guard case .array(let parts?) = page, parts.count == 2, let next = parts[0].text,
                  case .array(let keys?) = parts[1] else { throw Failure(reason: "unexpected SCAN reply") }
            cursor = next
            for keyValue in keys {
                guard let key = keyValue.text,
                      case .integer(let ttl) = try call(connection, &buffer, ["PTTL", key]), ttl > 0,
                      var ban = Self.ban(fromKey: key, prefix: settings.keyPrefix) else { continue }
                ban.milliseconds = UInt64(ttl)
                loaded.append(ban)
            }
        } while cursor != "0"
        bans.deliver(loaded)
        received.wrappingAdd(loaded.count, ordering: .relaxed)
        if !loaded.isEmpty { log("shared state: \(loaded.count) bans in force loaded") }
    }

    /// Pub/sub messages in `buffer`: other edges' bans go to the workers.
    private func takeMessages(_ buffer: inout [UInt8]) throws(Failure) {
        var remote: [RateLimiter.StartedBan] = []
        while true {
            let parsed: (RESPValue, Int)?
            do {
                parsed = try RESP.parse(buffer)
            } catch {
                throw Failure(reason: error.reason)
            }
            guard let (value, used) = parsed else { break }
            buffer.removeFirst(used)
            guard case .array(let parts?) = value, parts.count == 3, parts[0].text == "message",
                  let payload = parts[2].text else { continue }
            let fields = payload.split(separator: " ").map(String.init)
            guard fields.count == 5, fields[0] != edgeID, let keyHigh = UInt64(fields[2], radix: 16),
                  let milliseconds = UInt64(fields[3]), let step = Int(fields[4]) else { continue }
            remote.append(RateLimiter.StartedBan(keyHigh: keyHigh, isIPv6: fields[1] == "6",
                                                 milliseconds: milliseconds, step: step))
        }
        bans.deliver(remote)
        received.wrappingAdd(remote.count, ordering: .relaxed)
    }

    func key(for ban: RateLimiter.StartedBan) -> String {
        "\(settings.keyPrefix)ban:\(field(ban.keyHigh, ban.isIPv6))"
    }

    func message(for ban: RateLimiter.StartedBan) -> String {
        "\(edgeID) \(ban.isIPv6 ? "6" : "4") \(String(ban.keyHigh, radix: 16)) \(ban.milliseconds) \(ban.step)"
    }

    static func ban(fromKey key: String, prefix: String) -> RateLimiter.StartedBan? {
        guard key.hasPrefix(prefix + "ban:"), let source = source(fromField: String(key.dropFirst(prefix.count + 4))) else {
            return nil
        }
        return RateLimiter.StartedBan(keyHigh: source.keyHigh, isIPv6: source.isIPv6, milliseconds: 0, step: 1)
    }
}
