/// How much of the admin thread any one client may take, so that no client (slow, idle, or one of many) keeps a
/// liveness probe waiting. Kubernetes restarts an edge whose probes time out, healthy or not.
public struct AdminLimits: Sendable, Equatable {
    /// From accept to a complete request head; past it the connection is closed. Default 2 s: a probe or a
    /// scraper sends its request at once, a client that trickles bytes is only holding a slot.
    public var requestTimeout: Duration
    /// From a complete request head to the last response byte handed to the kernel (and the client's close);
    /// past it the connection is closed. Default 1 s: the largest response is a few KiB of metrics.
    public var sendTimeout: Duration
    /// Connections open at once. Default 256. When full, a new connection closes the oldest one that has not
    /// completed its request, so idle connections can never lock a probe out.
    public var maxConnections: Int
    /// Request line and headers, in bytes. Default 8 KiB; a longer head is answered 431.
    public var maxRequestHeadBytes: Int

    public init(requestTimeout: Duration = .seconds(2), sendTimeout: Duration = .seconds(1), maxConnections: Int = 256,
                maxRequestHeadBytes: Int = 8_192) {
        self.requestTimeout = requestTimeout
        self.sendTimeout = sendTimeout
        self.maxConnections = maxConnections
        self.maxRequestHeadBytes = maxRequestHeadBytes
    }
}
