public import SIPSecurity
import Synchronization

/// The policy a reload may change while traffic flows: validator rules and rate limits. Sockets, workers and
/// upstreams need a restart.
public struct Policy: Sendable, Equatable {
    public var security: SecurityConfiguration
    public var rateLimit: RateLimitConfiguration

    public init(security: SecurityConfiguration, rateLimit: RateLimitConfiguration) {
        self.security = security
        self.rateLimit = rateLimit
    }
}

/// Carries a new policy from the main thread (SIGHUP) to the workers, who pick it up at a safe point: between
/// batches, never in the middle of a message (Kamailio's cfg_update, Envoy's posted config). A worker reads one
/// atomic per loop turn; the lock is taken only when the generation moved.
public final class PolicyMailbox: Sendable {
    private let generation = Atomic<UInt64>(0)
    private let policy: Mutex<Policy>

    public init(_ initial: Policy) {
        policy = Mutex(initial)
    }

    /// Publishes `new`; workers apply it within one loop turn (at most 200 ms).
    public func post(_ new: Policy) {
        policy.withLock { $0 = new }
        generation.wrappingAdd(1, ordering: .releasing)
    }

    public var currentGeneration: UInt64 { generation.load(ordering: .acquiring) }

    public func read() -> Policy { policy.withLock { $0 } }
}
