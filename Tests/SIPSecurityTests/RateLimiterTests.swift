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
        #expect(decisions.last == .banned(step: 1))
        #expect(limits.check(alice, isRegister: false, now: 5_000) == .banned(step: 1))  // even after the window
        #expect(limits.check(alice, isRegister: false, now: 11_001) == .allow)  // ban over
    }

    /// Floods `source` at `now` until it is banned; the ban's step.
    func flood(_ limits: inout RateLimiter, _ source: EndpointAddress = alice, now: UInt64) -> Int? {
        for _ in 0..<100 {
            if case .banned(let step) = limits.check(source, isRegister: false, now: now) { return step }
        }
        return nil
    }

    func escalating(first: UInt64 = 5_000, memory: UInt64 = 600_000, maximum: UInt64 = 300_000) -> RateLimiter {
        var configuration = RateLimitConfiguration()
        configuration.requestsPerWindow = 10
        configuration.banMultiplier = 3
        configuration.banMilliseconds = first
        configuration.banMemoryMilliseconds = memory
        configuration.banMaxMilliseconds = maximum
        return RateLimiter(configuration: configuration)
    }

    @Test func theDefaultsBanAFirstOffenceForFiveSecondsAndCapAtFiveMinutes() {
        let defaults = RateLimitConfiguration()
        #expect(defaults.banMilliseconds == 5_000)
        #expect(defaults.banMaxMilliseconds == 300_000)
        #expect(defaults.banMemoryMilliseconds == 600_000)
        #expect((1...8).map { defaults.banDuration(step: $0) }
                == [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000])
        #expect(defaults.banDuration(step: 255) == 300_000)
        var none = defaults
        none.banMilliseconds = 0
        #expect(none.banDuration(step: 1) == 0 && none.banDuration(step: 200) == 0)
    }

    @Test func aFirstBanIsShortAndTheSourceRecoversRightAfter() {
        var limits = escalating()
        #expect(flood(&limits, now: 1_000) == 1)
        #expect(limits.check(alice, isRegister: false, now: 5_999) == .banned(step: 1))
        // 5 s after the ban began it is over, and the flood's count is not held against the source.
        #expect(limits.check(alice, isRegister: false, now: 6_000) == .allow)
        for _ in 0..<9 { #expect(limits.check(alice, isRegister: false, now: 6_000) == .allow) }
        // Others were never affected.
        #expect(limits.check(bob, isRegister: false, now: 2_000) == .allow)
    }

    @Test func eachRepeatWithinTheMemoryDoublesTheBanUpToTheCap() {
        var limits = escalating(maximum: 30_000)
        var now: UInt64 = 1_000
        // Steps 1...4: 5, 10, 20, then the cap of 30 s (not 40), and it stays there.
        for (step, length) in [(1, 5_000), (2, 10_000), (3, 20_000), (4, 30_000), (5, 30_000)] as [(Int, UInt64)] {
            #expect(flood(&limits, now: now) == step)
            #expect(limits.check(alice, isRegister: false, now: now + length - 1) == .banned(step: step))
            now += length
            #expect(limits.check(alice, isRegister: false, now: now) == .allow, "step \(step) lasts \(length) ms")
            now += 1_000  // back a second later, well within the memory
        }
    }

    @Test func aQuietSpellLongerThanTheMemoryStartsOver() {
        var limits = escalating(memory: 60_000)
        #expect(flood(&limits, now: 1_000) == 1)  // banned until 6,000
        #expect(flood(&limits, now: 6_000 + 59_999) == 2)  // within a minute of the end: doubled
        // Banned until 65,999 + 10,000; a minute and more after that, a flood is a first offence again.
        #expect(flood(&limits, now: 75_999 + 60_000) == 1)
        #expect(limits.check(alice, isRegister: false, now: 75_999 + 60_000 + 5_000) == .allow)
    }

    @Test func escalationIsPerSource() {
        var limits = escalating()
        #expect(flood(&limits, now: 1_000) == 1)
        #expect(flood(&limits, now: 7_000) == 2)
        #expect(flood(&limits, bob, now: 7_000) == 1)
    }

    @Test func aFlowCheckedOnItsOwnPassesItsSourcesBanButIsLimitedAndBannedItself() {
        var limits = escalating()
        let office = EndpointAddress.parse("198.51.100.7", port: 5060)!
        let phone = EndpointAddress.parse("198.51.100.7", port: 40_001)!
        let otherPhone = EndpointAddress.parse("198.51.100.7", port: 40_002)!
        #expect(flood(&limits, office, now: 1_000) == 1)
        #expect(limits.check(phone, isRegister: false, now: 1_000) == .banned(step: 1))  // the source: banned
        // Counted on its own, the phone has its own quota, and a second phone behind the NAT another one.
        for _ in 0..<10 { #expect(limits.checkFlow(phone, isRegister: false, now: 1_000) == .allow) }
        #expect(limits.checkFlow(phone, isRegister: false, now: 1_000) == .limited)
        #expect(limits.checkFlow(otherPhone, isRegister: false, now: 1_000) == .allow)
        // A flow that floods is banned by itself, its escalation its own.
        #expect((0..<30).contains { _ in limits.checkFlow(phone, isRegister: false, now: 1_000) == .banned(step: 1) })
        #expect(limits.checkFlow(otherPhone, isRegister: false, now: 1_000) == .allow)
        // The flow's count never touched the source's: once its ban is over, the source starts clean.
        #expect(limits.check(office, isRegister: false, now: 6_000) == .allow)
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
