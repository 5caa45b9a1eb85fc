/// Option values of the lower targets (data path, io_uring sizes, stream limits, TLS files, audit destination):
/// plain data with their defaults, no behaviour and no dependencies, so the configuration reader can name them
/// without depending on the sockets and workers they configure.

/// How a worker moves datagrams.
public enum DataPath: String, Sendable, CaseIterable {
    /// io_uring when the kernel allows it, else recvmmsg.
    case auto
    /// io_uring: multishot recvmsg into provided buffers, sends batched through the ring.
    case ioUring = "io-uring"
    /// epoll + recvmmsg + sendmmsg: works wherever io_uring is disabled or filtered (containers, seccomp).
    case recvmmsg
}

/// Sizes of one io_uring. Defaults suit one worker of an edge proxy.
public struct URingOptions: Sendable, Equatable {
    /// Submission queue entries. Default: 256.
    public var entries: UInt32 = 256
    /// Receive buffers lent to the kernel (a power of two). Default: 128.
    public var receiveBuffers: UInt32 = 128
    /// Largest datagram payload a receive buffer holds; larger ones arrive truncated and are dropped. Default: 65,536.
    public var receiveBufferSize: UInt32 = 65_536
    /// Send slots (sends in flight). Default: 256.
    public var sendSlots: UInt32 = 256
    /// Largest datagram sent through the ring; larger ones go through `sendto`. Default: 8,192.
    public var sendSlotSize: UInt32 = 8_192
    /// Under dense traffic, how long a worker may wait for more completions before handling those it has, in
    /// microseconds: fewer wake-ups (CPU) against at most this much added latency. Sparse traffic, and clients that
    /// wait for each answer before sending again, are not held, except during a 50 ms check each second (see
    /// `BatchWait`). 0 handles every completion at once. Default: 300.
    public var batchWaitMicroseconds: UInt32 = 300
    /// Completions that end a batch wait early. Default: 32.
    public var batchSize: UInt32 = 32
    /// Most stream requests (armed TCP receives, sends, connects) in flight at once; about two per connection.
    /// Default: 65,536.
    public var maxStreamRequests: UInt32 = 65_536
    /// Arm stream receives single-shot even when the kernel has multishot recv (what the ring does by itself on
    /// kernels before 6.0). Every `.streamData` event then needs a re-arm. Default: false.
    public var singleShotStreamReceive = false

    public init() {}
}

/// Limits of SIP over TCP and TLS (RFC 3261 §18.3), per worker.
public struct StreamLimits: Sendable, Equatable {
    /// Accept TCP on the listen address.
    public var tcpEnabled = true
    /// Open connections per worker; more are closed as they are accepted. Default: 4,096.
    public var maxConnections = 4_096
    /// A connection that sends nothing (not even an RFC 5626 ping) this long is closed. Default: 300 s.
    public var idleTimeoutMilliseconds: UInt64 = 300_000
    /// A message whose first bytes have arrived must be complete within this, however slowly its bytes keep
    /// coming (a slowloris resets no deadline by trickling). Default: 10 s (Kamailio's tcp_msg_read_timeout: 20).
    public var messageTimeoutMilliseconds: UInt64 = 10_000
    /// A client's TLS handshake must finish within this after accept. Default: 10 s.
    public var tlsHandshakeTimeoutMilliseconds: UInt64 = 10_000
    /// Bytes queued toward one connection while the peer does not read; past it the connection is cut, never
    /// buffered without bound. Default: 256 KiB.
    public var maxSendQueueBytes = 262_144

    public init() {}
}

/// Persistent connections toward the upstreams when they are reached over TCP or TLS (the transport is
/// `ProxyConfiguration.upstreamTransport`): a few per upstream per worker, reconnected with exponential backoff.
public struct UpstreamPoolSettings: Sendable, Equatable {
    /// Connections per upstream per worker. Default: 2.
    public var connectionsPerUpstream = 2
    /// First reconnect delay after a failure, doubled per failure up to `reconnectMaxMilliseconds`.
    public var reconnectMinMilliseconds: UInt64 = 200
    public var reconnectMaxMilliseconds: UInt64 = 10_000
    /// The name the upstreams' TLS certificate must carry (nil: the address is checked against the certificate's
    /// IP entries).
    public var tlsServerName: String?

    public init() {}
}

/// A TLS protocol version.
public enum TLSVersion: Sendable, Equatable {
    case tls12
    case tls13
}

/// How a ``TLSContext`` is built: files, peer verification, versions, ciphers.
public struct TLSConfiguration: Sendable, Equatable {
    /// PEM certificate chain, leaf first. A server needs one; a client only for mutual TLS.
    public var certificatePath: String?
    /// PEM private key of the leaf certificate (checked against it).
    public var privateKeyPath: String?
    /// PEM trust anchors. Server: client certificates are requested and verified against them. Client: the server
    /// is verified against them (instead of the system's trust store).
    public var caPath: String?
    /// Server: a client certificate is mandatory and must verify against `caPath` (RFC 5922-style mutual TLS).
    /// Client: verify the server's certificate and name (a client with a `caPath` verifies too).
    public var requirePeerCertificate: Bool
    /// Oldest version accepted. Default: TLS 1.2.
    public var minimumVersion: TLSVersion
    /// Newest version offered or accepted; nil (default) means the newest OpenSSL has, TLS 1.3.
    public var maximumVersion: TLSVersion?
    /// OpenSSL cipher list for TLS 1.2. Nil: ECDHE with AES-GCM or CHACHA20-POLY1305 only (no RSA key exchange,
    /// no CBC).
    public var ciphers: String?
    /// OpenSSL TLS 1.3 ciphersuites. Nil: OpenSSL's defaults.
    public var tls13Ciphersuites: String?
    /// Server: issue session tickets (resumption). Default false: no tickets, no session cache.
    public var sessionTickets: Bool

    public init(certificatePath: String? = nil, privateKeyPath: String? = nil, caPath: String? = nil,
                requirePeerCertificate: Bool = false, minimumVersion: TLSVersion = .tls12,
                maximumVersion: TLSVersion? = nil, ciphers: String? = nil, tls13Ciphersuites: String? = nil,
                sessionTickets: Bool = false) {
        self.certificatePath = certificatePath
        self.privateKeyPath = privateKeyPath
        self.caPath = caPath
        self.requirePeerCertificate = requirePeerCertificate
        self.minimumVersion = minimumVersion
        self.maximumVersion = maximumVersion
        self.ciphers = ciphers
        self.tls13Ciphersuites = tls13Ciphersuites
        self.sessionTickets = sessionTickets
    }
}

/// Where security audit lines go.
public enum AuditDestination: Sendable, Equatable {
    case off
    case standardError
    case file(String)
}

/// Health checking of the upstreams: OPTIONS every `intervalMilliseconds` (a probe unanswered by the next one has
/// failed), down after `fall` failures in a row, up again after `rise` answers.
public struct UpstreamHealthSettings: Sendable, Equatable {
    public var intervalMilliseconds: UInt64 = 1_000
    public var fall = 3
    public var rise = 2
    /// Retry-After of the 503 a request gets when no upstream is up.
    public var retryAfterSeconds: UInt32 = 5

    public init() {}
}

/// How workers forward: statelessly (RFC 3261 §16.11, the default), or through a transaction layer per worker
/// (§16 as a stateful proxy, §17 transactions) that absorbs client retransmissions, retransmits toward the core
/// itself and fails over to the next upstream.
public enum ProxyMode: String, Sendable, CaseIterable {
    case stateless
    case transaction
}

/// The transaction layer's bounds and timers (`proxy.mode: transaction`), per worker.
public struct TransactionSettings: Sendable, Equatable {
    public var mode = ProxyMode.stateless
    /// Live transactions per worker (server and client ones count alike); all memory is taken at start.
    public var maxPerWorker = 65_536
    /// No response from an upstream this long after a request was sent: the next upstream is tried.
    public var failoverTimeoutMilliseconds: UInt64 = 2_000
    /// Upstreams tried per request, the first included.
    public var maxAttempts = 3
    /// RFC 3261 T1, T2, T4.
    public var t1Milliseconds: UInt64 = 500
    public var t2Milliseconds: UInt64 = 4_000
    public var t4Milliseconds: UInt64 = 5_000
    /// Timer C (RFC 3261 §16.6 step 11): an INVITE with a provisional but no final response is cancelled after it.
    public var timerCMilliseconds: UInt64 = 180_000
    /// Per worker, for the copies of messages transactions resend (requests toward the core, last responses).
    public var messageMemoryMegabytes = 64

    public init() {}
}
