import SIPBytes
public import SIPProxyCore
public import SIPUring

#if canImport(Glibc)
import Glibc
#endif

/// The two lookups the upstream resolver needs: ``DNSResolver`` does them against DNS, tests answer from tables.
public protocol DNSLookup {
    /// SRV records of `name`, in any order.
    func serviceRecords(_ name: String) throws(DNSLookupError) -> [DNSServiceRecord]
    /// A and AAAA records of `name`; `.noData` only when it has neither.
    func addresses(_ name: String) throws(DNSLookupError) -> [DNSAddressRecord]
}

extension DNSResolver: DNSLookup {}

/// The configured upstreams as addresses at one moment: what an ``UpstreamSet`` is built from.
public struct ResolvedUpstreams: Sendable, Equatable {
    /// Numeric entries and every address the names have now, each address once (its first occurrence).
    public var members: [UpstreamSet.Member]
    /// Names that have no address right now (in configured order).
    public var unresolved: [UpstreamTarget]

    public init(members: [UpstreamSet.Member], unresolved: [UpstreamTarget]) {
        self.members = members
        self.unresolved = unresolved
    }
}

/// Turns configured ``UpstreamTarget``s into ``UpstreamSet/Member``s (RFC 3263 subset) and keeps them fresh.
///
/// - A numeric entry is one member, as configured.
/// - A name with a port: each of its A/AAAA addresses is a member with the entry's weight and priority.
/// - A name without a port: SRV `_sip._udp`, `_sip._tcp` or `_sips._tcp` by the transport, then A/AAAA of each
///   target. A record's priority orders within the entry's (member priority = entry priority × 65,536 + SRV
///   priority), its weight is the member's weight, except that weight 0 ("use rarely", RFC 2782) gets the share
///   of weight 1, since ``UpstreamSet`` needs positive weights. A "." target (no service) gives nothing. No SRV
///   records (no such name, no data): A/AAAA of the name on 5060 (5061 for TLS), with the entry's weight and
///   priority.
///
/// Members come in configured order; within a name, in SRV order (priority, heavier first, then target name), then
/// in the order the addresses came (kept when a later answer has the same addresses rotated).
///
/// Each name is looked up again when the smallest TTL it used runs out, clamped to `ttlBounds`. "No such name" and
/// "no data" are answers: what they cover has no address now, looked up again after the smallest TTL bound. A
/// lookup that times out or fails is not: what it covered keeps its last addresses, and the name is tried again
/// after 1 s, doubling to 30 s while it keeps failing.
///
/// One instance per resolver thread (not Sendable): the lookups block.
public final class UpstreamResolver {
    /// Retry delays after failed lookups: the first, and the cap the doubling stops at.
    public static let firstRetryMilliseconds: UInt64 = 1_000
    public static let longestRetryMilliseconds: UInt64 = 30_000
    /// The longest ``run(until:publish:log:)`` sleeps before looking at its stop signal.
    static let sleepSliceMilliseconds: UInt64 = 200

    private let targets: [UpstreamTarget]
    private let transport: TransportKind
    private let lookup: any DNSLookup
    private let ttlBounds: ClosedRange<UInt32>
    /// One per target, nil for numeric entries (nothing to look up).
    private var names: [NameState?]
    /// The last set returned, to tell a change.
    private var published: ResolvedUpstreams?

    /// Since when (monotonic milliseconds) no target has had any address: the caller gives up after a while of
    /// this. Nil while any target has one, before the first lookups, and when there are no targets.
    public private(set) var unresolvableSince: UInt64?

    /// What one name resolves to, and when to look again.
    private struct NameState {
        var members: [UpstreamSet.Member] = []
        /// The last addresses (port 0) each looked-up host gave, so a host whose lookup fails keeps its own.
        var hostAddresses: [String: [EndpointAddress]] = [:]
        /// Monotonic milliseconds; 0: at once.
        var due: UInt64 = 0
        /// Refreshes in a row that had a failed lookup: the retry delay doubles with each.
        var failedRefreshes = 0
        /// What went wrong in the last refresh, as logged (each problem is logged once, not on every retry).
        var problems: [String] = []
    }

    /// One refresh of a name, before it replaces the name's state.
    private struct Refresh {
        var members: [UpstreamSet.Member] = []
        var hostAddresses: [String: [EndpointAddress]] = [:]
        /// The smallest TTL among the records used, seconds; nil when none was used.
        var smallestTTL: UInt32?
        /// A lookup answered "no such name" or "no data" for something the name needs.
        var hadEmptyAnswer = false
        /// A lookup failed (timeout, failure): what it covered kept its last addresses.
        var hadFailure = false
        var problems: [String] = []

        mutating func use(ttl: UInt32) {
            smallestTTL = min(smallestTTL ?? ttl, ttl)
        }
    }

    /// - Parameters:
    ///   - transport: the upstream transport, which picks the SRV service (`_sip._udp`, `_sip._tcp`, `_sips._tcp`)
    ///     and the fallback port.
    ///   - ttlBounds: seconds; a name is looked up again after its smallest TTL clamped to this range, and after
    ///     the lower bound when it has no address.
    public init(targets: [UpstreamTarget], transport: TransportKind, lookup: any DNSLookup,
                ttlBounds: ClosedRange<UInt32> = 5...3_600) {
        precondition(ttlBounds.lowerBound > 0, "a TTL floor of 0 would look names up in a loop")
        self.targets = targets
        self.transport = transport
        self.lookup = lookup
        self.ttlBounds = ttlBounds
        names = targets.map { target in
            if case .name = target.host { return NameState() }
            return nil
        }
    }

    /// Looks every name up now (blocking) and returns the whole set.
    public func resolveAll(now: UInt64, log: (String) -> Void = { _ in }) -> ResolvedUpstreams {
        for index in names.indices where names[index] != nil {
            refreshName(at: index, now: now, log: log)
        }
        return assemble(now: now) ?? published ?? ResolvedUpstreams(members: [], unresolved: [])
    }

    /// Looks up again the names that are due; returns the set only when it differs from the last one returned.
    public func refreshDue(now: UInt64, log: (String) -> Void = { _ in }) -> ResolvedUpstreams? {
        for index in names.indices {
            guard let state = names[index], state.due <= now else { continue }
            refreshName(at: index, now: now, log: log)
        }
        return assemble(now: now)
    }

    /// Milliseconds until the next name is due (0: already due); nil when no target is a name.
    public func nextDue(now: UInt64) -> UInt64? {
        guard let due = names.compactMap({ $0?.due }).min() else { return nil }
        return due > now ? due - now : 0
    }

    /// The resolver thread's loop: refreshes names as they fall due, publishes each changed set and logs each
    /// change (addresses gained or lost, lookups failing or recovering), and calls `eachTurn` with the time, until
    /// `stop`. Sleeps in slices of at most 200 ms so a stop is seen promptly; a lookup in progress is waited for
    /// (bounded by the DNS timeout). Returns false when it gave up: no target had an address for
    /// `giveUpAfterMilliseconds` (nil: never gives up), so the edge can serve nothing.
    @discardableResult
    public func run(until stop: StopSignal, giveUpAfterMilliseconds: UInt64? = nil,
                    publish: @Sendable (ResolvedUpstreams) -> Void, log: @Sendable (String) -> Void,
                    eachTurn: (UInt64) -> Void = { _ in }) -> Bool {
        while !stop.isStopped {
            let now = MonotonicClock.milliseconds()
            if let changed = refreshDue(now: now, log: log) { publish(changed) }
            eachTurn(now)
            if let giveUpAfterMilliseconds, let since = unresolvableSince, now - since >= giveUpAfterMilliseconds {
                return false
            }
            let wait = nextDue(now: MonotonicClock.milliseconds()) ?? Self.sleepSliceMilliseconds
            let slice = min(wait, Self.sleepSliceMilliseconds)
            if slice > 0 { usleep(UInt32(slice * 1_000)) }
        }
        return true
    }

    // MARK: - One name

    private func refreshName(at index: Int, now: UInt64, log: (String) -> Void) {
        guard var state = names[index], case .name(let name, let port) = targets[index].host else { return }
        let target = targets[index]
        var refresh = Refresh()
        if let port {
            addHost(name, port: port, weight: target.weight, priority: target.priority, previous: state,
                    into: &refresh)
        } else {
            resolveService(of: name, target: target, previous: state, into: &refresh)
        }

        let delay: UInt64
        let answerDelay = answerDelayMilliseconds(of: refresh)
        if refresh.hadFailure {
            state.failedRefreshes += 1
            let backoff = min(Self.firstRetryMilliseconds << UInt64(min(state.failedRefreshes - 1, 16)),
                              Self.longestRetryMilliseconds)
            // What did answer may expire sooner than the retry.
            delay = min(backoff, answerDelay ?? backoff)
        } else {
            state.failedRefreshes = 0
            delay = answerDelay ?? UInt64(ttlBounds.lowerBound) * 1_000
        }
        state.due = now + delay

        if refresh.problems != state.problems {
            if refresh.problems.isEmpty {
                log("upstream \(target): DNS lookups succeed again")
            } else {
                let retry = refresh.hadFailure ? "; keeping the last addresses of what failed" : ""
                log("upstream \(target): \(refresh.problems.joined(separator: "; "))\(retry); "
                    + "next lookup in \(Self.seconds(delay))")
            }
        }
        if refresh.members != state.members {
            log("upstream \(target): " + Self.describeChange(from: state.members, to: refresh.members))
        }
        state.members = refresh.members
        state.hostAddresses = refresh.hostAddresses
        state.problems = refresh.problems
        names[index] = state
    }

    /// SRV first; no SRV records: the name itself on the transport's default port.
    private func resolveService(of name: String, target: UpstreamTarget, previous: NameState,
                                into refresh: inout Refresh) {
        let service = "\(serviceLabels).\(name)"
        let records: [DNSServiceRecord]
        do {
            records = try lookup.serviceRecords(service)
        } catch where error.isAnswer {
            let port: UInt16 = transport == .tls ? 5061 : 5060
            addHost(name, port: port, weight: target.weight, priority: target.priority, previous: previous,
                    into: &refresh)
            return
        } catch {
            // Nothing is known about the targets now: the whole name stays as it was.
            refresh.members = previous.members
            refresh.hostAddresses = previous.hostAddresses
            refresh.hadFailure = true
            refresh.problems.append("SRV lookup of \(service) failed: \(error)")
            return
        }
        // RFC 2782 picks by weight at random within a priority; UpstreamSet does the weighing, so here the order
        // only needs to be stable: priority, heavier first, then by name.
        let ordered = records.sorted { ($0.priority, $1.weight, $0.target) < ($1.priority, $0.weight, $1.target) }
        for record in ordered {
            refresh.use(ttl: record.ttl)
            guard !record.target.isEmpty, record.target != "." else { continue }
            addHost(record.target, port: record.port, weight: max(Int(record.weight), 1),
                    priority: target.priority * 65_536 + Int(record.priority), previous: previous, into: &refresh)
        }
    }

    /// A/AAAA of `host`, each address a member on `port`.
    private func addHost(_ host: String, port: UInt16, weight: Int, priority: Int, previous: NameState,
                         into refresh: inout Refresh) {
        let addresses: [EndpointAddress]
        if let known = refresh.hostAddresses[host] {
            // A host named by two SRV records (other ports, say) is looked up once per refresh.
            addresses = known
        } else {
            addresses = lookUpAddresses(of: host, previous: previous, into: &refresh)
            refresh.hostAddresses[host] = addresses
        }
        for address in addresses {
            var address = address
            address.port = port
            refresh.members.append(UpstreamSet.Member(address, weight: weight, priority: priority))
        }
    }

    /// The host's addresses now; its last ones when the lookup failed.
    private func lookUpAddresses(of host: String, previous: NameState, into refresh: inout Refresh)
        -> [EndpointAddress] {
        do {
            let records = try lookup.addresses(host)
            for record in records { refresh.use(ttl: record.ttl) }
            let addresses = records.map(\.address)
            // Servers rotate the records of an answer (dnsmasq, BIND's cyclic order): the same addresses in another
            // order keep their last order, so a rotation is no change to publish.
            if let last = previous.hostAddresses[host], last.count == addresses.count,
               Set(last) == Set(addresses) {
                return last
            }
            return addresses
        } catch where error.isAnswer {
            refresh.hadEmptyAnswer = true
            refresh.problems.append("\(host): \(error)")
            return []
        } catch {
            refresh.hadFailure = true
            refresh.problems.append("address lookup of \(host) failed: \(error)")
            return previous.hostAddresses[host] ?? []
        }
    }

    private var serviceLabels: String {
        switch transport {
        case .udp: "_sip._udp"
        case .tcp: "_sip._tcp"
        case .tls: "_sips._tcp"
        // Not upstream transports (the configuration refuses them there); RFC 7118 defines no SRV labels.
        case .ws: "_sip._tcp"
        case .wss: "_sips._tcp"
        }
    }

    /// Milliseconds until what answered must be looked up again: the smallest TTL used, or the floor when
    /// something had no address (so it is noticed soon when it gets one), within the bounds. Nil when nothing
    /// answered.
    private func answerDelayMilliseconds(of refresh: Refresh) -> UInt64? {
        var ttl = refresh.smallestTTL
        if refresh.hadEmptyAnswer { ttl = min(ttl ?? ttlBounds.lowerBound, ttlBounds.lowerBound) }
        guard let ttl else { return nil }
        return UInt64(min(max(ttl, ttlBounds.lowerBound), ttlBounds.upperBound)) * 1_000
    }

    // MARK: - The whole set

    /// Builds the set from every target's current members; returns it when it changed since the last one.
    private func assemble(now: UInt64) -> ResolvedUpstreams? {
        var seen = Set<EndpointAddress>()
        var members: [UpstreamSet.Member] = []
        var unresolved: [UpstreamTarget] = []
        for (index, target) in targets.enumerated() {
            let candidates: [UpstreamSet.Member]
            if let address = target.address {
                candidates = [UpstreamSet.Member(address, weight: target.weight, priority: target.priority)]
            } else {
                candidates = names[index]?.members ?? []
                if candidates.isEmpty { unresolved.append(target) }
            }
            for member in candidates where seen.insert(member.address).inserted {
                members.append(member)
            }
        }
        if members.isEmpty && !targets.isEmpty {
            if unresolvableSince == nil { unresolvableSince = now }
        } else {
            unresolvableSince = nil
        }
        let resolved = ResolvedUpstreams(members: members, unresolved: unresolved)
        guard resolved != published else { return nil }
        published = resolved
        return resolved
    }

    private static func describeChange(from old: [UpstreamSet.Member], to new: [UpstreamSet.Member]) -> String {
        let oldAddresses = old.map(\.address)
        let newAddresses = new.map(\.address)
        let added = newAddresses.filter { !oldAddresses.contains($0) }
        let removed = oldAddresses.filter { !newAddresses.contains($0) }
        if new.isEmpty { return "no address now (was \(list(oldAddresses)))" }
        var text = "resolves to \(list(newAddresses))"
        if old.isEmpty { return text }
        var changes: [String] = []
        if !added.isEmpty { changes.append("added \(list(added))") }
        if !removed.isEmpty { changes.append("removed \(list(removed))") }
        if changes.isEmpty { changes.append("new priorities, weights or order") }
        text += " (\(changes.joined(separator: "; ")))"
        return text
    }

    private static func list(_ addresses: [EndpointAddress]) -> String {
        addresses.map(\.description).joined(separator: ", ")
    }

    private static func seconds(_ milliseconds: UInt64) -> String {
        milliseconds % 1_000 == 0 ? "\(milliseconds / 1_000) s" : "\(Double(milliseconds) / 1_000) s"
    }
}
