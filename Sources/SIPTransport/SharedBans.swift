public import SIPSecurity
import Synchronization
import SIPLocks

/// Where workers and the shared-state client (one thread per process, talking to Redis) exchange bans: workers
/// hand over the bans they start, the client hands back the bans other edges started. Touched when a ban starts or
/// arrives and by one atomic load per loop turn, never per message; a worker never waits on Redis.
public final class SharedBans: Sendable {
    private let local = Locked<[RateLimiter.StartedBan]>([])
    /// Bans other edges started, for every worker to apply once.
    private let remote = SequencedLog<RateLimiter.StartedBan>()
    private let connected = Atomic<Bool>(false)
    /// Shared rate limits: workers' busiest sources per interval, and the sources the edges together limit.
    private let counts = Locked<[UInt64: [RateLimiter.SourceCount]]>([:])
    private let limits = SequencedLog<RateLimiter.SourceCount>()
    /// Sharing interval (wall clock, so edges agree on its boundaries) and how many sources each worker reports.
    public let intervalMilliseconds: UInt64
    public let busiestSources: Int

    public init(intervalMilliseconds: UInt64 = 1_000, busiestSources: Int = 100) {
        self.intervalMilliseconds = intervalMilliseconds
        self.busiestSources = busiestSources
    }

    /// A worker's busiest sources of `interval` (wall-clock milliseconds / interval length).
    public func publish(_ sources: [RateLimiter.SourceCount], interval: UInt64) {
        guard !sources.isEmpty else { return }
        counts.withLock { pending in
            // Bounded: intervals the client has not taken for a minute are dropped.
            if pending.count > 60, let oldest = pending.keys.min() { pending.removeValue(forKey: oldest) }
            pending[interval, default: []].append(contentsOf: sources)
        }
    }

    /// The client: every worker's reports, by interval.
    public func takeCounts() -> [UInt64: [RateLimiter.SourceCount]] {
        counts.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
    }

    /// The client: sources over the limit across the edges, limited for one interval from when a worker sees it.
    public func deliverLimits(_ sources: [RateLimiter.SourceCount]) {
        limits.append(sources)
    }

    public var latestLimit: UInt64 { limits.latest }

    public func sharedLimits(after seen: UInt64) -> ([RateLimiter.SourceCount], UInt64) {
        limits.items(after: seen)
    }

    /// A worker's new bans, for the other edges (at most 4,096 wait; a storm beyond that is not worth sharing
    /// ban by ban).
    public func publish(_ bans: [RateLimiter.StartedBan]) {
        local.withLock { pending in
            pending.append(contentsOf: bans.prefix(max(0, 4_096 - pending.count)))
        }
    }

    /// The client: bans to send to Redis.
    public func takeLocal() -> [RateLimiter.StartedBan] {
        local.withLock { pending in
            defer { pending.removeAll(keepingCapacity: true) }
            return pending
        }
    }

    /// The client: bans other edges started.
    public func deliver(_ bans: [RateLimiter.StartedBan]) {
        remote.append(bans)
    }

    /// The newest sequence number delivered: a worker compares it with the last it applied (one atomic load).
    public var latest: UInt64 { remote.latest }

    /// Remote bans after `seen`, and the sequence number they run to.
    public func remoteBans(after seen: UInt64) -> ([RateLimiter.StartedBan], UInt64) {
        remote.items(after: seen)
    }

    /// Whether the client is connected to Redis (`sip_shared_state_up`).
    public var isConnected: Bool {
        get { connected.load(ordering: .relaxed) }
        set { connected.store(newValue, ordering: .relaxed) }
    }
}

/// Items one thread delivers and every worker reads once, in order: each gets a sequence number (the newest 4,096
/// are kept), and the latest number sits in an atomic, so a worker with nothing new pays one load.
final class SequencedLog<Item: Sendable>: Sendable {
    private let entries = Locked<[(UInt64, Item)]>([])
    private let sequence = Atomic<UInt64>(0)

    func append(_ items: [Item]) {
        guard !items.isEmpty else { return }
        entries.withLock { log in
            var next = sequence.load(ordering: .relaxed)
            for item in items {
                next += 1
                log.append((next, item))
            }
            if log.count > 4_096 { log.removeFirst(log.count - 4_096) }
            sequence.store(next, ordering: .releasing)
        }
    }

    var latest: UInt64 { sequence.load(ordering: .acquiring) }

    /// The items after `seen`, and the sequence number they run to.
    func items(after seen: UInt64) -> ([Item], UInt64) {
        entries.withLock { log in
            (log.filter { $0.0 > seen }.map(\.1), log.last?.0 ?? seen)
        }
    }
}
