import SIPBytes
import SIPSecurity
import Testing

let alice = EndpointAddress.parse("192.0.2.10", port: 5060)!
let bob = EndpointAddress.parse("192.0.2.11", port: 5060)!

func limiter(requests: UInt32 = 10, registers: UInt32 = 5, tableSize: Int = 1_024) -> RateLimiter {
    var configuration = RateLimitConfiguration()
    configuration.requestsPerWindow = requests
    configuration.registersPerWindow = registers
    configuration.tableSize = tableSize
    configuration.banMultiplier = 3
    configuration.banMilliseconds = 10_000
    return RateLimiter(configuration: configuration)
}

@Suite struct RateLimiterTests {
    @Test func aSourceIsLimitedAfterItsQuotaAndOthersAreNot() {
        var limits = limiter()
        for _ in 0..<10 { #expect(limits.check(alice, isRegister: false, now: 1_000) == .allow) }
        #expect(limits.check(alice, isRegister: false, now: 1_000) == .limited)
        #expect(limits.check(bob, isRegister: false, now: 1_000) == .allow)
    }

    @Test func registerHasItsOwnTighterQuota() {
        var limits = limiter()
        for _ in 0..<5 { #expect(limits.check(alice, isRegister: true, now: 1_000) == .allow) }
        #expect(limits.check(alice, isRegister: true, now: 1_000) == .limited)
        // Other requests from the same source are counted separately.
        #expect(limits.check(alice, isRegister: false, now: 1_000) == .allow)
    }

    @Test func theWindowSlidesAndServiceRecovers() {
        var limits = limiter()
        for _ in 0..<11 { _ = limits.check(alice, isRegister: false, now: 1_000) }
        #expect(limits.check(alice, isRegister: false, now: 1_500) == .limited)  // half the old window still weighs
        #expect(limits.check(alice, isRegister: false, now: 3_100) == .allow)  // two windows later: forgotten
    }

    @Test func floodsGetBannedUntilTheBanEnds() {
        var limits = limiter()
        var decisions: [RateLimiter.Decision] = []
        for _ in 0..<40 { decisions.append(limits.check(alice, isRegister: false, now: 1_000)) }
        #expect(decisions.last == .banned)
        #expect(limits.check(alice, isRegister: false, now: 5_000) == .banned)  // banned even after the window
        #expect(limits.check(alice, isRegister: false, now: 11_001) == .allow)  // ban over
    }

    @Test func ipv6SourcesAreGroupedBySlash64() {
        var limits = limiter(requests: 3)
        for host in 1...3 {
            #expect(limits.check(EndpointAddress.parse("2001:db8:1:2::\(host)", port: 5060)!, isRegister: false, now: 0) == .allow)
        }
        #expect(limits.check(EndpointAddress.parse("2001:db8:1:2:ffff::9", port: 5060)!, isRegister: false, now: 0) == .limited)
        #expect(limits.check(EndpointAddress.parse("2001:db8:1:3::1", port: 5060)!, isRegister: false, now: 0) == .allow)
    }

    @Test func memoryStaysBoundedUnderASpoofedSourceFlood() {
        var limits = limiter(tableSize: 64)
        for i in 0..<10_000 {
            let source = EndpointAddress(family: .ipv4, high: UInt64(0x0A00_0000 + i) << 32, low: 0, port: 5060)
            _ = limits.check(source, isRegister: false, now: UInt64(i))
        }
        #expect(limits.trackedSources <= 128)
        #expect(limits.evictions > 9_000)
        // A real client is still tracked and limited correctly in the churn.
        for _ in 0..<10 { #expect(limits.check(alice, isRegister: false, now: 20_000) == .allow) }
        #expect(limits.check(alice, isRegister: false, now: 20_000) == .limited)
    }

    @Test func prefixesMatchLikeCIDR() {
        let v4 = AddressPrefix("192.0.2.0/24")!
        #expect(v4.contains(alice))
        #expect(!v4.contains(EndpointAddress.parse("192.0.3.1", port: 1)!))
        let v6 = AddressPrefix("2001:db8::/32")!
        #expect(v6.contains(EndpointAddress.parse("2001:db8:ffff::1", port: 1)!))
        #expect(!v6.contains(EndpointAddress.parse("2001:db9::1", port: 1)!))
        #expect(AddressPrefix("10.0.0.1")!.contains(EndpointAddress.parse("10.0.0.1", port: 9)!))
        #expect(AddressPrefix("10.0.0.0/33") == nil)
        #expect(AddressPrefix("not-an-address") == nil)
    }
}

@Suite struct SecurityRuleTests {
    @Test func ordinalsFollowAllCases() {
        for (index, rule) in SecurityRule.allCases.enumerated() { #expect(rule.ordinal == index, "\(rule)") }
        #expect(SecurityRule.allCases.count <= 32)  // the validator keeps one bit per rule in a UInt32
    }
}
