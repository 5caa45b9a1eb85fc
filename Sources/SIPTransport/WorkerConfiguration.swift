public import SIPBytes
public import SIPCapture
public import SIPParsing
public import SIPProxyCore
public import SIPSecurity
public import SIPSettings
public import SIPUring

/// Settings every worker reads; built once, before any worker starts, and never changed while they run.
public struct WorkerConfiguration: Sendable {
    public var listen: EndpointAddress
    public var proxy: ProxyConfiguration
    public var parseLimits: ParseLimits
    public var dataPath: DataPath
    /// Number of workers sharing the public port.
    public var workers: Int
    public var uring: URingOptions
    /// Datagrams taken per recvmmsg call.
    public var batchSize: Int
    public var security: SecurityConfiguration = SecurityConfiguration()
    public var rateLimit: RateLimitConfiguration = RateLimitConfiguration()
    public var audit: AuditDestination = .standardError
    /// Audit lines per second per worker, at most. Default: 50.
    public var auditLinesPerSecond: Int = 50
    public var streams = StreamLimits()
    /// SIP over TLS: where to listen (nil = off). The certificate rides in the ``Policy`` so a reload can swap it.
    public var tlsListen: EndpointAddress?
    /// SIP over WebSocket: listeners (WSS uses the ``Policy``'s certificate, like TLS), handshake rules, pings.
    public var webSocket = WebSocketSettings()
    public var upstreamPool = UpstreamPoolSettings()
    /// OPTIONS probes and the fall/rise rule; worker 0 runs them when the workers share an ``UpstreamBoard``.
    public var upstreamHealth = UpstreamHealthSettings()
    /// `proxy.mode` and, in transaction mode, each worker's transaction bounds and timers.
    public var transactions = TransactionSettings()
    /// TLS toward the upstreams (upstream transport tls): the client context with the trust anchors and optional
    /// client certificate, built once by the caller.
    public var upstreamTLS: TLSContext?
    /// HEP v3 capture to a collector (off unless `capture.hep` names one).
    public var capture = CaptureSettings()
    /// A fatal condition worker 0 meets on purpose once its first message arrives (SIPEDGE_TEST_FAULT), so tests
    /// and operators can check that a dying worker takes the process down loudly and the supervisor restarts it.
    public var injectedFault: InjectedFault?

    public init(listen: EndpointAddress, proxy: ProxyConfiguration, parseLimits: ParseLimits = ParseLimits(),
                dataPath: DataPath = .auto, workers: Int = 1, uring: URingOptions = URingOptions(),
                batchSize: Int = 32) {
        self.listen = listen
        self.proxy = proxy
        self.parseLimits = parseLimits
        self.dataPath = dataPath
        self.workers = workers
        self.uring = uring
        self.batchSize = batchSize
    }
}

/// A worker's fatal conditions, as `SIPEDGE_TEST_FAULT` asks for them (never set in normal operation).
public enum InjectedFault: String, Sendable, CaseIterable {
    /// The worker's loop fails the way a socket it can no longer read fails it (``WorkerFailure``): logged as
    /// critical, every worker stopped, exit status 1.
    case workerFailure = "worker-failure"
    /// A trap on the worker's thread (what a violated precondition does): the process dies by a signal, the Swift
    /// runtime's message and backtrace on stderr, a core dump where the limits allow.
    case workerTrap = "worker-trap"
}
