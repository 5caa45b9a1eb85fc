import Foundation
import SIPBytes
import SIPProxyCore
import SIPTransport
import SIPUring
import Testing

/// DNS lookups and upstream resolution against a real dnsmasq on 127.0.0.1, started and stopped by PID: SRV with
/// priorities, weights, ports and TTLs, A/AAAA, NXDOMAIN and no-data answers, failures, and records that change
/// while the resolver runs.
@Suite(.serialized) struct DNSResolverTests {
    let base = ProcessHarness.portBase(.dns)
    /// The dnsmasq with fixed records.
    var staticPort: Int { base }
    /// The dnsmasq whose hosts file the test rewrites.
    var changingPort: Int { base + 1 }

    func resolver(port: Int, timeoutMilliseconds: Int = 1_000) throws -> DNSResolver {
        try DNSResolver(servers: [EndpointAddress.parse("127.0.0.1", port: UInt16(port))!],
                        timeoutMilliseconds: timeoutMilliseconds, tries: 2)
    }

    func ip(_ text: String, port: UInt16 = 0) -> EndpointAddress { EndpointAddress.parse(text, port: port)! }

    static let staticRecords = [
        "--local-ttl=7",
        "--srv-host=_sip._udp.core.test,a.core.test,5070,10,60",
        "--srv-host=_sip._udp.core.test,b.core.test,5071,20,0",
        "--srv-host=_sip._udp.core.test,c.core.test,5072,10,30",
        "--host-record=a.core.test,127.0.0.11,fd00::11,30",
        "--host-record=b.core.test,127.0.0.12",
        "--host-record=c.core.test,127.0.0.13,40",
        "--host-record=plain.core.test,127.0.0.21,fd00::21,50",
    ]

    @Test func lookupsReturnRecordsWithTheirTTLsAndTellAnswersFromFailures() throws {
        let dnsmasq = try ProcessHarness.startDnsmasq(port: staticPort, records: Self.staticRecords, probe: "a.core.test",
                                       log: "dns-static-\(getpid()).log")
        defer { ProcessHarness.stop(dnsmasq) }
        let resolver = try resolver(port: staticPort)

        let services = try resolver.serviceRecords("_sip._udp.core.test")
        #expect(services.sorted { $0.port < $1.port } == [
            DNSServiceRecord(priority: 10, weight: 60, port: 5070, target: "a.core.test", ttl: 7),
            DNSServiceRecord(priority: 20, weight: 0, port: 5071, target: "b.core.test", ttl: 7),
            DNSServiceRecord(priority: 10, weight: 30, port: 5072, target: "c.core.test", ttl: 7),
        ])
        #expect(try resolver.addresses("a.core.test") == [DNSAddressRecord(address: ip("127.0.0.11"), ttl: 30),
                                                          DNSAddressRecord(address: ip("fd00::11"), ttl: 30)])
        // No AAAA: the A record alone, not an error.
        #expect(try resolver.addresses("b.core.test") == [DNSAddressRecord(address: ip("127.0.0.12"), ttl: 7)])

        #expect(throws: DNSLookupError.noSuchName) { try resolver.addresses("nope.core.test") }
        #expect(throws: DNSLookupError.noSuchName) { try resolver.serviceRecords("_sip._tcp.core.test") }
        // The name exists, with other types only.
        #expect(throws: DNSLookupError.noData) { try resolver.serviceRecords("a.core.test") }
        // dnsmasq refuses names outside .test: neither an answer nor a timeout.
        #expect {
            try resolver.addresses("core.example")
        } throws: { error in
            guard case .failure = error as? DNSLookupError else { return false }
            return true
        }
    }

    @Test func upstreamTargetsResolveThroughSrvAndAddressRecords() throws {
        let dnsmasq = try ProcessHarness.startDnsmasq(port: staticPort, records: Self.staticRecords, probe: "a.core.test",
                                       log: "dns-upstreams-\(getpid()).log")
        defer { ProcessHarness.stop(dnsmasq) }
        let missing = UpstreamTarget(.name("nope.core.test", port: 5060))
        let targets = [
            UpstreamTarget(.name("core.test", port: nil), weight: 5, priority: 1),
            UpstreamTarget(.name("plain.core.test", port: 5090), weight: 3),
            UpstreamTarget(.name("plain.core.test", port: nil), weight: 2),
            missing,
        ]
        let upstreams = UpstreamResolver(targets: targets, transport: .udp, lookup: try resolver(port: staticPort),
                                         ttlBounds: 1...3_600)
        let resolved = upstreams.resolveAll(now: 1_000)
        #expect(resolved.members == [
            UpstreamSet.Member(ip("127.0.0.11", port: 5070), weight: 60, priority: 65_546),
            UpstreamSet.Member(ip("fd00::11", port: 5070), weight: 60, priority: 65_546),
            UpstreamSet.Member(ip("127.0.0.13", port: 5072), weight: 30, priority: 65_546),
            UpstreamSet.Member(ip("127.0.0.12", port: 5071), weight: 1, priority: 65_556),
            UpstreamSet.Member(ip("127.0.0.21", port: 5090), weight: 3, priority: 0),
            UpstreamSet.Member(ip("fd00::21", port: 5090), weight: 3, priority: 0),
            // No SRV for plain.core.test: its addresses on 5060.
            UpstreamSet.Member(ip("127.0.0.21", port: 5060), weight: 2, priority: 0),
            UpstreamSet.Member(ip("fd00::21", port: 5060), weight: 2, priority: 0),
        ])
        #expect(resolved.unresolved == [missing])
        // The smallest TTL: nope.core.test has none, looked up again at the 1 s floor; then the SRV's 7 s.
        #expect(upstreams.nextDue(now: 1_000) == 1_000)
        #expect(upstreams.refreshDue(now: 2_000) == nil)
        #expect(upstreams.nextDue(now: 2_000) == 1_000)
        #expect(upstreams.unresolvableSince == nil)
    }

    @Test func aServerThatNeverAnswersTimesOutWithinTheBound() throws {
        // A bound UDP socket nobody reads: queries vanish, as with a dead server behind a firewall.
        let silent = try UDPSocket(binding: ip("127.0.0.1"), reusePort: false)
        let resolver = try DNSResolver(servers: [silent.localAddress], timeoutMilliseconds: 200, tries: 2)
        let started = Date()
        #expect(throws: DNSLookupError.timeout) { try resolver.addresses("a.core.test") }
        #expect(throws: DNSLookupError.timeout) { try resolver.serviceRecords("_sip._udp.core.test") }
        // 200 ms, then 400 ms on the second round, per lookup (A and AAAA run together).
        #expect(Date().timeIntervalSince(started) < 3)
    }

    @Test func changedRecordsReplaceTheMembersAfterTheirTTL() throws {
        // dnsmasq re-reads a file in a --hostsdir directory when it is rewritten in place (inotify), dropping the
        // names it read from it before. (SIGHUP and --addn-hosts would do too, but processes started from the test
        // runner inherit a signal mask that blocks SIGHUP.)
        let hostsDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("dns-hosts-\(getpid())")
        try? FileManager.default.removeItem(at: hostsDirectory)
        try FileManager.default.createDirectory(at: hostsDirectory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(at: hostsDirectory) }
        let hostsFile = hostsDirectory.appendingPathComponent("hosts")
        try Data("127.0.0.31 moving.core.test\n".utf8).write(to: hostsFile)
        let dnsmasq = try ProcessHarness.startDnsmasq(port: changingPort,
                                       records: ["--local-ttl=1", "--hostsdir=\(hostsDirectory.path)",
                                                 "--srv-host=_sip._udp.moving.test,moving.core.test,5070,0,10"],
                                       probe: "moving.core.test", log: "dns-changing-\(getpid()).log")
        defer { ProcessHarness.stop(dnsmasq) }
        let target = UpstreamTarget(.name("moving.test", port: nil))
        let upstreams = UpstreamResolver(targets: [target], transport: .udp,
                                         lookup: try resolver(port: changingPort), ttlBounds: 1...60)
        let first = upstreams.resolveAll(now: MonotonicClock.milliseconds())
        #expect(first.members == [UpstreamSet.Member(ip("127.0.0.31", port: 5070), weight: 10, priority: 0)])

        /// Rewrites the hosts file in place (not by renaming another file over it: dnsmasq would keep the names
        /// of both), and refreshes as the resolver thread would until a new set comes (5 s at most).
        func change(to hosts: String) throws -> ResolvedUpstreams? {
            try Data(hosts.utf8).write(to: hostsFile)
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline {
                if let changed = upstreams.refreshDue(now: MonotonicClock.milliseconds()) { return changed }
                usleep(50_000)
            }
            return nil
        }

        let moved = try change(to: "127.0.0.32 moving.core.test\n127.0.0.33 moving.core.test\n")
        // dnsmasq rotates the two A records from one answer to the next: compare without order.
        #expect(Set(moved?.members ?? []) == [UpstreamSet.Member(ip("127.0.0.32", port: 5070), weight: 10),
                                               UpstreamSet.Member(ip("127.0.0.33", port: 5070), weight: 10)])
        // Later answers rotate them again, which is no change.
        let settled = Date().addingTimeInterval(2.5)
        while Date() < settled {
            #expect(upstreams.refreshDue(now: MonotonicClock.milliseconds()) == nil)
            usleep(100_000)
        }

        // The target's name is gone: NXDOMAIN is an answer, its addresses leave the set.
        let gone = try change(to: "\n")
        #expect(gone == ResolvedUpstreams(members: [], unresolved: [target]))
        #expect(upstreams.unresolvableSince != nil)

        let back = try change(to: "127.0.0.34 moving.core.test\n")
        #expect(back?.members == [UpstreamSet.Member(ip("127.0.0.34", port: 5070), weight: 10, priority: 0)])
        #expect(upstreams.unresolvableSince == nil)
    }
}
