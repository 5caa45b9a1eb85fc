public import SIPSecurity
import Synchronization

/// Where workers and the shared-state client (one thread per process, talking to Redis) exchange bans: workers
/// hand over the bans they start, the client hands back the bans other edges started. Touched when a ban starts or
/// arrives and by one atomic load per loop turn, never per message; a worker never waits on Redis.
public final class SharedBans: Sendable {
    private let local = Mutex<[RateLimiter.StartedBan]>([])
    /// Remote bans with their sequence numbers, the newest last (the last 4,096 kept).
    private let remote = Mutex<[(UInt64, RateLimiter.StartedBan)]>([])
    private let sequence = Atomic<UInt64>(0)
    private let connected = Atomic<Bool>(false)

    public init() {}

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
        guard !bans.isEmpty else { return }
        remote.withLock { log in
            var next = sequence.load(ordering: .relaxed)
            for ban in bans {
                next += 1
                log.append((next, ban))
            }
            if log.count > 4_096 { log.removeFirst(log.count - 4_096) }
            sequence.store(next, ordering: .releasing)
        }
    }

    /// The newest sequence number delivered: a worker compares it with the last it applied (one atomic load).
    public var latest: UInt64 { sequence.load(ordering: .acquiring) }

    /// Remote bans after `seen`, and the sequence number they run to.
    public func remoteBans(after seen: UInt64) -> ([RateLimiter.StartedBan], UInt64) {
        remote.withLock { log in
            (log.filter { $0.0 > seen }.map(\.1), log.last?.0 ?? seen)
        }
    }

    /// Whether the client is connected to Redis (`sip_shared_state_up`).
    public var isConnected: Bool {
        get { connected.load(ordering: .relaxed) }
        set { connected.store(newValue, ordering: .relaxed) }
    }
}
