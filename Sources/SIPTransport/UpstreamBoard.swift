public import SIPBytes
public import SIPProxyCore
public import SIPMetrics
import Synchronization
import SIPLocks

/// The upstream set as every thread sees it: the members (from the configuration, then DNS), their up/down state
/// (from the health monitor on worker 0), the passive failures workers report, and what the admin server shows.
///
/// Workers read one atomic word per loop turn: the membership generation (high 16 bits) and the up bits of that
/// membership (low 48). Only when the generation moves do they copy the member list, under a lock that is never
/// taken on the message path; a word whose generation is not the worker's membership is left for the next turn,
/// so bits are never applied to the wrong members.
public final class UpstreamBoard: Sendable {
    /// Members at most: ``UpstreamSet/maximumMembers``; DNS answers beyond it are cut, draining members first.
    public static let maximumMembers = UpstreamSet.maximumMembers
    static let upMask: UInt64 = (1 << 48) - 1

    public struct Membership: Sendable, Equatable {
        public var generation: UInt64
        public var members: [UpstreamSet.Member]
    }

    private struct Members {
        var membership: Membership
        /// When each draining member leaves for good (monotonic ms).
        var drainDeadlines: [EndpointAddress: UInt64] = [:]
    }

    private let members: Locked<Members>
    private let word: Atomic<UInt64>
    private let failures = Locked<[EndpointAddress]>([])
    private let failuresPending = Atomic<Int>(0)
    private let reports: Locked<[UpstreamStateSample]>
    private let ready = Atomic<Bool>(false)
    private let drainMilliseconds: UInt64
    /// Told of every state change (the process logs it); called on the thread that saw it.
    private let onChange: @Sendable (_ upstream: EndpointAddress, _ isUp: Bool) -> Void

    /// `members`: the configured numeric upstreams (those of DNS names follow through ``resolved(_:now:)``),
    /// all up to begin with.
    public init(members: [UpstreamSet.Member], drainMilliseconds: UInt64 = 3_600_000,
                onChange: @escaping @Sendable (EndpointAddress, Bool) -> Void = { _, _ in }) {
        let kept = Array(members.prefix(Self.maximumMembers))
        self.members = Locked(Members(membership: Membership(generation: 1, members: kept)))
        word = Atomic(Self.word(generation: 1, bits: Self.allUp(kept.count)))
        reports = Locked(kept.map { UpstreamStateSample(upstream: $0.address.description, isUp: true, isMember: true) })
        self.drainMilliseconds = drainMilliseconds
        self.onChange = onChange
    }

    static func word(generation: UInt64, bits: UInt64) -> UInt64 { (generation & 0xFFFF) << 48 | (bits & upMask) }
    static func allUp(_ count: Int) -> UInt64 { count >= 64 ? upMask : (1 << UInt64(count)) - 1 }

    /// The published word (one atomic load): compare with the last one applied.
    public var stateWord: UInt64 { word.load(ordering: .acquiring) }

    public var membership: Membership { members.withLock { $0.membership } }

    /// The members and the word published for them, read together (a worker or the monitor adopting them).
    public func membershipAndWord() -> (membership: Membership, word: UInt64) {
        members.withLock { state in (state.membership, word.load(ordering: .acquiring)) }
    }

    /// The members DNS resolves to now (numeric entries included). Members that are no longer there drain: they
    /// stay, marked, for in-dialog requests, until `drainMilliseconds` pass or DNS names them again. Returns
    /// whether the membership changed.
    @discardableResult
    public func resolved(_ resolved: [UpstreamSet.Member], now: UInt64) -> Bool {
        members.withLock { state in
            var next: [UpstreamSet.Member] = []
            var seen = Set<EndpointAddress>()
            for member in resolved where seen.insert(member.address).inserted {
                var fresh = member
                fresh.isDraining = false
                next.append(fresh)
                state.drainDeadlines[member.address] = nil
            }
            for member in state.membership.members where !seen.contains(member.address) {
                let deadline = state.drainDeadlines[member.address] ?? now + drainMilliseconds
                guard deadline > now else {
                    state.drainDeadlines[member.address] = nil
                    continue
                }
                state.drainDeadlines[member.address] = deadline
                var draining = member
                draining.isDraining = true
                next.append(draining)
            }
            if next.count > Self.maximumMembers {
                // Resolved ones first, then the draining ones that have longest to go.
                let live = next.filter { !$0.isDraining }
                let draining = next.filter(\.isDraining)
                    .sorted { state.drainDeadlines[$0.address]! > state.drainDeadlines[$1.address]! }
                next = Array((live + draining).prefix(Self.maximumMembers))
                for address in state.drainDeadlines.keys where !next.contains(where: { $0.address == address }) {
                    state.drainDeadlines[address] = nil
                }
            }
            guard next != state.membership.members else { return false }
            // Members that stay keep their state; new ones start up (see UpstreamHealth).
            let old = state.membership.members
            let oldBits = word.load(ordering: .acquiring)
            var bits: UInt64 = 0
            for (index, member) in next.enumerated() {
                let wasUp = old.firstIndex { $0.address == member.address }.map { oldBits & (1 << UInt64($0)) != 0 }
                if wasUp ?? true { bits |= 1 << UInt64(index) }
            }
            state.membership = Membership(generation: state.membership.generation + 1, members: next)
            word.store(Self.word(generation: state.membership.generation, bits: bits), ordering: .releasing)
            reports.withLock { reports in
                for index in reports.indices { reports[index].isMember = false }
                for (index, member) in next.enumerated() {
                    let isUp = bits & (1 << UInt64(index)) != 0
                    if let at = reports.firstIndex(where: { $0.upstream == member.address.description }) {
                        reports[at].isMember = true
                        reports[at].isUp = isUp
                    } else {
                        reports.append(UpstreamStateSample(upstream: member.address.description, isUp: isUp, isMember: true))
                    }
                }
            }
            return true
        }
    }

    /// Drained members whose time is up leave (call now and then; ``resolved(_:now:)`` does it too).
    public func expireDrained(now: UInt64) {
        let current = members.withLock { $0.membership.members.filter { !$0.isDraining } }
        resolved(current, now: now)
    }

    /// The health monitor's verdict for membership `generation`; ignored when the membership has moved on (the
    /// monitor adopts the new one and publishes again). `changes` are logged and counted.
    func publish(bits: UInt64, generation: UInt64, changes: [(EndpointAddress, Bool)], ready isReady: Bool) {
        let published = members.withLock { state -> Bool in
            guard state.membership.generation == generation else { return false }
            word.store(Self.word(generation: generation, bits: bits), ordering: .releasing)
            return true
        }
        guard published else { return }
        ready.store(isReady, ordering: .releasing)
        guard !changes.isEmpty else { return }
        reports.withLock { reports in
            for (address, isUp) in changes {
                guard let at = reports.firstIndex(where: { $0.upstream == address.description }) else { continue }
                reports[at].isUp = isUp
                if isUp { reports[at].becameUp += 1 } else { reports[at].becameDown += 1 }
            }
        }
        for (address, isUp) in changes { onChange(address, isUp) }
    }

    /// Live traffic found `upstream` unreachable (ICMP port unreachable, a pooled connection failed): the monitor
    /// counts it as a failed probe on its next turn. Bounded: a storm keeps the first 1,024 until then.
    func reportFailure(_ upstream: EndpointAddress) {
        failures.withLock { pending in
            guard pending.count < 1_024 else { return }
            pending.append(upstream)
        }
        failuresPending.add(1, ordering: .releasing)
    }

    /// Failures were reported that ``takeFailures()`` has not taken yet (one atomic load).
    var hasFailures: Bool { failuresPending.load(ordering: .acquiring) > 0 }

    /// The failures reported since the last call (one atomic load when there are none).
    func takeFailures() -> [EndpointAddress] {
        guard hasFailures else { return [] }
        failuresPending.store(0, ordering: .releasing)
        return failures.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }

    /// Some upstream is up and has answered a probe since start: `/health/ready`.
    public var isReady: Bool { ready.load(ordering: .acquiring) }

    /// Readiness and every upstream seen, for `/health/ready` and `/metrics`.
    public var report: UpstreamReport { UpstreamReport(ready: isReady, upstreams: reports.withLock { $0 }) }
}
