public import SIPSecurity
public import SIPUring
import Synchronization
import SIPLocks

/// The policy a reload may change while traffic flows: validator rules, rate limits and the TLS certificate.
/// Sockets, workers and upstreams need a restart.
public struct Policy: Sendable, Equatable {
    public var security: SecurityConfiguration
    public var rateLimit: RateLimitConfiguration
    /// The server certificate and key for new TLS connections; nil when TLS is off.
    public var tls: TLSContext?

    public init(security: SecurityConfiguration, rateLimit: RateLimitConfiguration, tls: TLSContext? = nil) {
        self.security = security
        self.rateLimit = rateLimit
        self.tls = tls
    }

    public static func == (a: Policy, b: Policy) -> Bool {
        a.security == b.security && a.rateLimit == b.rateLimit && a.tls === b.tls
    }
}

/// Carries a new policy from the main thread (SIGHUP) to the workers, who pick it up at a safe point: between
/// batches, never in the middle of a message (Kamailio's cfg_update, Envoy's posted config). A worker reads one
/// atomic per loop turn; the lock is taken only when the generation moved.
public final class PolicyMailbox: Sendable {
    private let generation = Atomic<UInt64>(0)
    private let policy: Locked<Policy>

    public init(_ initial: Policy) {
        policy = Locked(initial)
    }

    /// Publishes `new`; workers apply it within one loop turn (at most 200 ms).
    public func post(_ new: Policy) {
        policy.withLock { $0 = new }
        generation.wrappingAdd(1, ordering: .releasing)
    }

    public var currentGeneration: UInt64 { generation.load(ordering: .acquiring) }

    public func read() -> Policy { policy.withLock { $0 } }
}
