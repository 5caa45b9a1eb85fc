public import SIPBytes

/// `shared_state.*`: the Redis that edges of one deployment share bans through.
public struct SharedStateSettings: Sendable, Equatable {
    /// `redis://HOST:PORT/DB`; nil: each edge keeps its bans to itself.
    public var redis: RedisTarget?
    /// AUTH password (from `shared_state.password_file` or SIPEDGE_REDIS_PASSWORD); nil: none.
    public var password: String?
    /// Prefixes every key and the channel, so deployments can share one Redis.
    public var keyPrefix = "sipedge:"
    /// Shared rate limits: each edge adds its busiest sources' counts per interval; a source over the limit
    /// across the edges is limited on all of them for the next interval.
    public var rateIntervalMilliseconds = 1_000
    public var busiestSources = 100

    public init() {}
}

public struct RedisTarget: Sendable, Equatable, CustomStringConvertible {
    public var address: EndpointAddress
    public var database: Int

    public init(address: EndpointAddress, database: Int) {
        self.address = address
        self.database = database
    }

    public var description: String { "redis://\(address)/\(database)" }
}
