public import SIPBytes

/// `shared_state.*`: the Redis that edges of one deployment share bans through.
public struct SharedStateSettings: Sendable, Equatable {
    /// `redis://HOST:PORT/DB`; nil: each edge keeps its bans to itself.
    public var redis: RedisTarget?
    /// AUTH password (from `shared_state.password_file` or SIPEDGE_REDIS_PASSWORD); nil: none.
    public var password: String?
    /// Prefixes every key and the channel, so deployments can share one Redis.
    public var keyPrefix = "sipedge:"

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
