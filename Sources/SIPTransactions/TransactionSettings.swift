/// RFC 3261 §17 timer bases and the transaction layer's bounds, in milliseconds. Plain values, read by the
/// worker's transaction layer (`proxy.mode: transaction`).
public struct TransactionTimers: Sendable, Equatable {
    /// RTT estimate (T1, default 500 ms): A, B, E, F, G, H, J and the backoff of retransmissions start from it.
    public var t1: UInt64 = 500
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (T2, default 4 s).
    public var t2: UInt64 = 4_000
    /// Longest time a message stays in the network (T4, default 5 s): Timers I and K.
    public var t4: UInt64 = 5_000

    public init() {}
}
