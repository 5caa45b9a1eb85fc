import SIPBytes
import SIPProxyCore
@testable import SIPTransport
import SIPUring
import Synchronization
import Testing

/// Answers lookups from tables the test edits between refreshes; a name in neither table does not exist.
private final class TableLookup: DNSLookup {
    var services: [String: Result<[DNSServiceRecord], DNSLookupError>] = [:]
    var hosts: [String: Result<[DNSAddressRecord], DNSLookupError>] = [:]
    private(set) var asked: [String] = []

    func serviceRecords(_ name: String) throws(DNSLookupError) -> [DNSServiceRecord] {
        asked.append(name)
        return try (services[name] ?? .failure(.noSuchName)).get()
    }

    func addresses(_ name: String) throws(DNSLookupError) -> [DNSAddressRecord] {
        asked.append(name)
        return try (hosts[name] ?? .failure(.noSuchName)).get()
    }

    func host(_ name: String, _ addresses: String..., ttl: UInt32 = 60) {
        hosts[name] = .success(addresses.map { DNSAddressRecord(address: ip($0, port: 0), ttl: ttl) })
    }

    func service(_ name: String, _ records: DNSServiceRecord...) {
        services[name] = .success(records)
    }
}

private func ip(_ text: String, port: UInt16) -> EndpointAddress {
    EndpointAddress.parse(text, port: port)!
}

private func srv(_ target: String, port: UInt16, priority: UInt16 = 0, weight: UInt16 = 0,
                 ttl: UInt32 = 60) -> DNSServiceRecord {
    DNSServiceRecord(priority: priority, weight: weight, port: port, target: target, ttl: ttl)
}

private func member(_ text: String, port: UInt16, weight: Int = 1, priority: Int = 0) -> UpstreamSet.Member {
    UpstreamSet.Member(ip(text, port: port), weight: weight, priority: priority)
}

@Suite struct UpstreamResolverTests {
    @Test func numericEntriesPassThroughWithoutLookups() {
        let lookup = TableLookup()
        let targets = [UpstreamTarget(ip("192.0.2.1", port: 5070), weight: 3, priority: 2),
                       UpstreamTarget(ip("2001:db8::1", port: 5060))]
        let resolver = UpstreamResolver(targets: targets, transport: .udp, lookup: lookup)
        let resolved = resolver.resolveAll(now: 0)
        #expect(resolved.members == [member("192.0.2.1", port: 5070, weight: 3, priority: 2),
                                     member("2001:db8::1", port: 5060)])
        #expect(resolved.unresolved.isEmpty)
        #expect(lookup.asked.isEmpty)
        #expect(resolver.nextDue(now: 0) == nil)
        #expect(resolver.unresolvableSince == nil)
    }

    @Test func nameWithPortTakesEveryAddressWithTheEntrysWeightAndPriority() {
        let lookup = TableLookup()
        lookup.host("core.example", "192.0.2.1", "192.0.2.2", "2001:db8::5")
        let target = UpstreamTarget(.name("core.example", port: 5080), weight: 7, priority: 1)
        let resolved = UpstreamResolver(targets: [target], transport: .udp, lookup: lookup).resolveAll(now: 0)
        #expect(resolved.members == [member("192.0.2.1", port: 5080, weight: 7, priority: 1),
                                     member("192.0.2.2", port: 5080, weight: 7, priority: 1),
                                     member("2001:db8::5", port: 5080, weight: 7, priority: 1)])
        // A port means no SRV (RFC 3263 §4.2).
        #expect(lookup.asked == ["core.example"])
    }

    @Test func srvPriorityAndWeightOrderWithinTheEntrysPriority() {
        let lookup = TableLookup()
        lookup.service("_sip._udp.example.com",
                       srv("b.example.com", port: 5071, priority: 20, weight: 0),
                       srv("c.example.com", port: 5072, priority: 10, weight: 10),
                       srv("a.example.com", port: 5070, priority: 10, weight: 60))
        lookup.host("a.example.com", "192.0.2.11")
        lookup.host("b.example.com", "192.0.2.12")
        lookup.host("c.example.com", "192.0.2.13", "2001:db8::13")
        let targets = [UpstreamTarget(.name("example.com", port: nil), weight: 5, priority: 2)]
        let resolved = UpstreamResolver(targets: targets, transport: .udp, lookup: lookup).resolveAll(now: 0)
        // Priority 10 first, heavier first within it; weight 0 gets the share of weight 1; the entry's priority
        // (2) dominates: 2 * 65,536 + SRV priority. The entry's own weight gives way to the SRV weights.
        #expect(resolved.members == [member("192.0.2.11", port: 5070, weight: 60, priority: 131_082),
                                     member("192.0.2.13", port: 5072, weight: 10, priority: 131_082),
                                     member("2001:db8::13", port: 5072, weight: 10, priority: 131_082),
                                     member("192.0.2.12", port: 5071, weight: 1, priority: 131_092)])
        #expect(UpstreamSet(resolved.members).count == 4)  // every weight positive
    }

    @Test(arguments: [(TransportKind.udp, "_sip._udp.example.com"), (.tcp, "_sip._tcp.example.com"),
                      (.tls, "_sips._tcp.example.com")])
    func srvServiceFollowsTheTransport(transport: TransportKind, service: String) {
        let lookup = TableLookup()
        lookup.service(service, srv("a.example.com", port: 5090))
        lookup.host("a.example.com", "192.0.2.11")
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("example.com", port: nil))],
                                        transport: transport, lookup: lookup)
        #expect(resolver.resolveAll(now: 0).members == [member("192.0.2.11", port: 5090)])
        #expect(lookup.asked == [service, "a.example.com"])
    }

    @Test(arguments: [(TransportKind.udp, UInt16(5060)), (.tcp, 5060), (.tls, 5061)])
    func withoutSrvRecordsTheNameItselfIsUsedOnTheDefaultPort(transport: TransportKind, port: UInt16) {
        for answer in [DNSLookupError.noSuchName, .noData] {
            let lookup = TableLookup()
            lookup.services["_sip._udp.example.com"] = .failure(answer)
            lookup.services["_sip._tcp.example.com"] = .failure(answer)
            lookup.services["_sips._tcp.example.com"] = .failure(answer)
            lookup.host("example.com", "192.0.2.1", "2001:db8::1")
            let targets = [UpstreamTarget(.name("example.com", port: nil), weight: 4, priority: 3)]
            let resolved = UpstreamResolver(targets: targets, transport: transport, lookup: lookup).resolveAll(now: 0)
            #expect(resolved.members == [member("192.0.2.1", port: port, weight: 4, priority: 3),
                                         member("2001:db8::1", port: port, weight: 4, priority: 3)])
        }
    }

    @Test func aDotTargetMeansNoServiceAndNoFallback() {
        let lookup = TableLookup()
        lookup.service("_sip._udp.example.com", srv("", port: 0))
        lookup.host("example.com", "192.0.2.1")
        let target = UpstreamTarget(.name("example.com", port: nil))
        let resolved = UpstreamResolver(targets: [target], transport: .udp, lookup: lookup).resolveAll(now: 0)
        #expect(resolved.members.isEmpty)
        #expect(resolved.unresolved == [target])
    }

    @Test func membersAreDeduplicatedByAddressFirstOccurrenceWins() {
        let lookup = TableLookup()
        lookup.host("one.example", "192.0.2.1", "192.0.2.2")
        lookup.host("two.example", "192.0.2.2", "192.0.2.3")
        lookup.service("_sip._udp.srv.example", srv("one.example", port: 5060, weight: 9),
                       srv("one.example", port: 5060, priority: 1, weight: 2))
        let targets = [UpstreamTarget(ip("192.0.2.3", port: 5060), weight: 2),
                       UpstreamTarget(.name("one.example", port: 5060), weight: 5),
                       UpstreamTarget(.name("two.example", port: 5060), weight: 6),
                       UpstreamTarget(.name("srv.example", port: nil))]
        let resolved = UpstreamResolver(targets: targets, transport: .udp, lookup: lookup).resolveAll(now: 0)
        #expect(resolved.members == [member("192.0.2.3", port: 5060, weight: 2),
                                     member("192.0.2.1", port: 5060, weight: 5),
                                     member("192.0.2.2", port: 5060, weight: 5)])
        // Every name has addresses, even those whose addresses all came earlier.
        #expect(resolved.unresolved.isEmpty)
        // Once for its own entry, once for srv.example, whose two records name it: one lookup per refresh.
        #expect(lookup.asked.filter { $0 == "one.example" }.count == 2)
    }

    @Test func namesAreLookedUpAgainWhenTheirSmallestTTLRunsOutWithinTheBounds() {
        let lookup = TableLookup()
        lookup.service("_sip._udp.srv.example", srv("a.example", port: 5070, ttl: 300))
        lookup.host("a.example", "192.0.2.1", ttl: 40)
        lookup.host("short.example", "192.0.2.2", ttl: 1)
        lookup.host("long.example", "192.0.2.3", ttl: 86_400)
        let resolver = UpstreamResolver(
            targets: [UpstreamTarget(.name("srv.example", port: nil)),
                      UpstreamTarget(.name("short.example", port: 5060)),
                      UpstreamTarget(.name("long.example", port: 5060))],
            transport: .udp, lookup: lookup, ttlBounds: 5...3_600)
        _ = resolver.resolveAll(now: 10_000)
        // short.example: TTL 1 s raised to the 5 s floor.
        #expect(resolver.nextDue(now: 10_000) == 5_000)
        #expect(resolver.refreshDue(now: 14_999) == nil)
        #expect(lookup.asked.count == 4)

        lookup.host("short.example", "192.0.2.4", ttl: 1)
        let changed = resolver.refreshDue(now: 15_000)
        #expect(changed?.members.map(\.address) == [ip("192.0.2.1", port: 5070), ip("192.0.2.4", port: 5060),
                                                    ip("192.0.2.3", port: 5060)])
        #expect(lookup.asked.suffix(1) == ["short.example"])
        // srv.example is due at 10 s + 40 s (its address TTL, below the SRV TTL), long.example after the 3,600 s
        // cap; short.example again 5 s later.
        #expect(resolver.nextDue(now: 15_000) == 5_000)
        #expect(resolver.refreshDue(now: 20_000) == nil)  // the same answer again: no new set
        #expect(resolver.nextDue(now: 20_000) == 5_000)
        lookup.host("short.example", "192.0.2.4", ttl: 3_600)
        _ = resolver.refreshDue(now: 25_000)
        #expect(resolver.nextDue(now: 25_000) == 25_000)
        _ = resolver.refreshDue(now: 50_000)
        #expect(lookup.asked.suffix(2) == ["_sip._udp.srv.example", "a.example"])
        #expect(resolver.nextDue(now: 50_000) == 40_000)
    }

    @Test func theSameAddressesRotatedAreNoChange() {
        let lookup = TableLookup()
        lookup.host("core.example", "192.0.2.1", "192.0.2.2", "192.0.2.3", ttl: 5)
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("core.example", port: 5060))],
                                        transport: .udp, lookup: lookup)
        let first = resolver.resolveAll(now: 0)
        lookup.host("core.example", "192.0.2.2", "192.0.2.3", "192.0.2.1", ttl: 5)
        #expect(resolver.refreshDue(now: 5_000) == nil)
        #expect(resolver.resolveAll(now: 10_000) == first)
        // A real change takes the answer's order.
        lookup.host("core.example", "192.0.2.3", "192.0.2.1", ttl: 5)
        #expect(resolver.refreshDue(now: 15_000)?.members == [member("192.0.2.3", port: 5060),
                                                              member("192.0.2.1", port: 5060)])
    }

    @Test func aFailedLookupKeepsTheLastAddressesAndRetriesWithBackoff() {
        let lookup = TableLookup()
        lookup.host("core.example", "192.0.2.1", ttl: 5)
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("core.example", port: 5060))],
                                        transport: .udp, lookup: lookup, ttlBounds: 1...3_600)
        let first = resolver.resolveAll(now: 0)
        #expect(first.members == [member("192.0.2.1", port: 5060)])

        lookup.hosts["core.example"] = .failure(.timeout)
        var now: UInt64 = 5_000
        var delays: [UInt64] = []
        for _ in 0..<7 {
            #expect(resolver.refreshDue(now: now) == nil)  // unchanged: the last addresses stay
            let delay = resolver.nextDue(now: now)!
            delays.append(delay)
            now += delay
        }
        #expect(delays == [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000])
        #expect(resolver.unresolvableSince == nil)

        lookup.hosts["core.example"] = .failure(.failure("SERVFAIL"))
        #expect(resolver.refreshDue(now: now) == nil)
        lookup.host("core.example", "192.0.2.9", ttl: 5)
        now += resolver.nextDue(now: now)!
        #expect(resolver.refreshDue(now: now)?.members == [member("192.0.2.9", port: 5060)])
        #expect(resolver.nextDue(now: now) == 5_000)  // the backoff is over
    }

    @Test func aFailedSrvTargetKeepsItsOwnAddressesWhileTheOthersUpdate() {
        let lookup = TableLookup()
        lookup.service("_sip._udp.example.com", srv("a.example.com", port: 5070), srv("b.example.com", port: 5071))
        lookup.host("a.example.com", "192.0.2.1")
        lookup.host("b.example.com", "192.0.2.2")
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("example.com", port: nil))],
                                        transport: .udp, lookup: lookup)
        _ = resolver.resolveAll(now: 0)
        lookup.hosts["a.example.com"] = .failure(.timeout)
        lookup.host("b.example.com", "192.0.2.3")
        let changed = resolver.resolveAll(now: 60_000)
        #expect(changed.members == [member("192.0.2.1", port: 5070), member("192.0.2.3", port: 5071)])
        #expect(resolver.nextDue(now: 60_000) == 1_000)

        // The SRV lookup itself failing keeps the whole name.
        lookup.services["_sip._udp.example.com"] = .failure(.timeout)
        #expect(resolver.resolveAll(now: 61_000) == changed)
    }

    @Test func noSuchNameRemovesTheAddressesAndRetriesAtTheFloor() {
        let lookup = TableLookup()
        lookup.host("core.example", "192.0.2.1", ttl: 300)
        lookup.host("other.example", "192.0.2.2", ttl: 300)
        let gone = UpstreamTarget(.name("core.example", port: 5060))
        let resolver = UpstreamResolver(targets: [gone, UpstreamTarget(.name("other.example", port: 5060))],
                                        transport: .udp, lookup: lookup, ttlBounds: 2...3_600)
        _ = resolver.resolveAll(now: 0)
        lookup.hosts["core.example"] = .failure(.noSuchName)
        let changed = resolver.refreshDue(now: 300_000)
        #expect(changed?.members == [member("192.0.2.2", port: 5060)])
        #expect(changed?.unresolved == [gone])
        #expect(resolver.nextDue(now: 300_000) == 2_000)

        lookup.hosts["core.example"] = .failure(.noData)
        #expect(resolver.refreshDue(now: 302_000) == nil)
        lookup.host("core.example", "192.0.2.1", ttl: 300)
        #expect(resolver.refreshDue(now: 304_000)?.unresolved == [])
    }

    @Test func unresolvableSinceCountsFromWhenNoTargetHasAnAddress() {
        let lookup = TableLookup()
        lookup.host("a.example", "192.0.2.1", ttl: 10)
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("a.example", port: 5060)),
                                                  UpstreamTarget(.name("b.example", port: 5060))],
                                        transport: .udp, lookup: lookup, ttlBounds: 1...3_600)
        #expect(resolver.unresolvableSince == nil)
        _ = resolver.resolveAll(now: 1_000)
        #expect(resolver.unresolvableSince == nil)  // a.example has an address

        lookup.hosts["a.example"] = .failure(.noSuchName)
        _ = resolver.refreshDue(now: 11_000)
        #expect(resolver.unresolvableSince == 11_000)
        _ = resolver.refreshDue(now: 12_000)
        #expect(resolver.unresolvableSince == 11_000)  // still since then

        lookup.host("a.example", "192.0.2.1", ttl: 10)
        _ = resolver.refreshDue(now: 13_000)
        #expect(resolver.unresolvableSince == nil)
    }

    @Test func aTimeoutOnFirstLookupLeavesTheNameUnresolved() {
        let lookup = TableLookup()
        lookup.hosts["a.example"] = .failure(.timeout)
        let target = UpstreamTarget(.name("a.example", port: 5060))
        let resolver = UpstreamResolver(targets: [target], transport: .udp, lookup: lookup)
        #expect(resolver.resolveAll(now: 500).unresolved == [target])
        #expect(resolver.unresolvableSince == 500)
        #expect(resolver.nextDue(now: 500) == 1_000)
    }

    @Test func changesAndProblemsAreLoggedOnce() {
        let lookup = TableLookup()
        lookup.host("a.example", "192.0.2.1", ttl: 5)
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("a.example", port: 5060))],
                                        transport: .udp, lookup: lookup)
        var lines: [String] = []
        _ = resolver.resolveAll(now: 0) { lines.append($0) }
        #expect(lines == ["upstream sip:a.example:5060: resolves to 192.0.2.1:5060"])

        lookup.hosts["a.example"] = .failure(.timeout)
        lines = []
        _ = resolver.refreshDue(now: 5_000) { lines.append($0) }
        _ = resolver.refreshDue(now: 6_000) { lines.append($0) }
        #expect(lines.count == 1)
        #expect(lines.first?.contains("address lookup of a.example failed: timeout") == true)

        lookup.host("a.example", "192.0.2.1", "192.0.2.2", ttl: 5)
        lines = []
        _ = resolver.refreshDue(now: 8_000) { lines.append($0) }
        #expect(lines == ["upstream sip:a.example:5060: DNS lookups succeed again",
                          "upstream sip:a.example:5060: resolves to 192.0.2.1:5060, 192.0.2.2:5060 "
                            + "(added 192.0.2.2:5060)"])
    }

    @Test func runPublishesChangesUntilStopped() async throws {
        let lookup = TableLookup()
        lookup.host("a.example", "192.0.2.1", ttl: 1)
        let resolver = UpstreamResolver(targets: [UpstreamTarget(.name("a.example", port: 5060))],
                                        transport: .udp, lookup: lookup, ttlBounds: 1...3_600)
        let stop = StopSignal()
        let published = PublishedSets()
        // The loop runs here, on the test's thread; the stop comes from a task after the first publication.
        let stopper = Task.detached {
            for _ in 0..<50 where published.count == 0 { try? await Task.sleep(for: .milliseconds(20)) }
            stop.stop()
        }
        resolver.run(until: stop, publish: { published.append($0) }, log: { _ in })
        await stopper.value
        #expect(published.count == 1)
        #expect(published.last?.members == [member("192.0.2.1", port: 5060)])
    }
}

/// What ``UpstreamResolver/run(until:publish:log:)`` published, collected across threads.
private final class PublishedSets: Sendable {
    private let sets = Mutex<[ResolvedUpstreams]>([])
    var count: Int { sets.withLock { $0.count } }
    var last: ResolvedUpstreams? { sets.withLock { $0.last } }
    func append(_ set: ResolvedUpstreams) { sets.withLock { $0.append(set) } }
}
