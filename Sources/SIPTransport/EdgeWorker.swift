public import SIPBytes
public import SIPSettings
public import SIPParsing
public import SIPProxyCore
public import SIPSecurity
public import SIPMetrics
public import SIPUring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A worker configuration this system cannot serve.
public struct WorkerSetupError: Error, CustomStringConvertible {
    public let description: String
}

/// Tells workers to stop; shared by all of them, read once per loop turn (not per message).
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}

/// Per-worker counters: plain integers written only by the worker's thread.
public struct WorkerCounters: Sendable {
    public var received = 0
    public var forwarded = 0
    public var replied = 0
    public var parseErrors = 0
    public var truncated = 0
    public var keepalives = 0
    public var sendFailures = 0
    /// Times the kernel had no free receive buffer (io_uring path): datagrams waited in the socket queue.
    public var receiveBufferExhaustion = 0
    /// Refusals by rule, indexed like `SecurityRule.allCases`.
    public var violations = [Int](repeating: 0, count: SecurityRule.allCases.count)
    /// Parse errors by code, indexed like `SIPParseError.Code.allCases`.
    public var parseErrorsByCode = [Int](repeating: 0, count: SIPParseError.Code.allCases.count)
    /// Requests by transport (indexed like `TransportKind`) and method (indexed like `SIPMethod.Known.allCases`),
    /// and responses by transport.
    public var requestsByMethod = [[Int]](repeating: [Int](repeating: 0, count: SIPMethod.Known.allCases.count),
                                          count: TransportKind.allCases.count)
    public var responses = [Int](repeating: 0, count: TransportKind.allCases.count)
    /// In-proxy time per message, per `latencyBucketBounds` (not cumulative; the last is +Inf).
    public var latencyBuckets = [Int](repeating: 0, count: latencyBucketBounds.count + 1)
    public var latencyNanoseconds: UInt64 = 0

    /// The snapshot published for the metrics endpoint.
    public func snapshot() -> WorkerSnapshot {
        var snapshot = WorkerSnapshot()
        for transport in TransportKind.allCases {
            let counts = requestsByMethod[Int(transport.rawValue)]
            for (index, method) in SIPMethod.Known.allCases.enumerated() where counts[index] > 0 {
                snapshot.messages[MessageCountKey(method: method == .extension ? "other" : method.name,
                                                  transport: "\(transport)")] = counts[index]
            }
            if responses[Int(transport.rawValue)] > 0 {
                snapshot.messages[MessageCountKey(method: "response", transport: "\(transport)")] =
                    responses[Int(transport.rawValue)]
            }
        }
        for (index, code) in SIPParseError.Code.allCases.enumerated() where parseErrorsByCode[index] > 0 {
            snapshot.errors[code.rawValue] = parseErrorsByCode[index]
        }
        for (reason, count) in dropped { snapshot.errors[reason.rawValue] = count }
        if truncated > 0 { snapshot.errors["truncated"] = truncated }
        if sendFailures > 0 { snapshot.errors["send_failed"] = sendFailures }
        for rule in SecurityRule.allCases where violations[rule.ordinal] > 0 && rule != .malformed {
            snapshot.violations[rule.rawValue] = violations[rule.ordinal]
        }
        snapshot.rateLimitRejections = violations[SecurityRule.rateLimited.ordinal] + violations[SecurityRule.banned.ordinal]
        snapshot.forwarded = forwarded
        snapshot.replied = replied
        var cumulative = 0
        for index in latencyBuckets.indices {
            cumulative += latencyBuckets[index]
            snapshot.latencyBuckets[index] = cumulative
        }
        snapshot.latencyCount = cumulative
        snapshot.latencySum = Double(latencyNanoseconds) / 1e9
        for (transport, count) in openConnections { snapshot.connections["\(transport)"] = count }
        snapshot.connectionEvents = connectionEvents
        snapshot.upstreamConnections = upstreamConnections
        return snapshot
    }

    /// Counts one message's in-proxy time.
    mutating func recordLatency(nanoseconds: UInt64) {
        latencyNanoseconds &+= nanoseconds
        let seconds = Double(nanoseconds) / 1e9
        var index = 0
        while index < latencyBucketBounds.count && seconds > latencyBucketBounds[index] { index += 1 }
        latencyBuckets[index] += 1
    }
    /// Messages the proxy core dropped, by reason.
    public var dropped: [DropReason: Int] = [:]
    /// Open connections by transport, and connection events (see `WorkerSnapshot.connectionEvents`).
    public var openConnections: [TransportKind: Int] = [:]
    public var connectionEvents: [String: Int] = [:]
    /// Pool connections to the upstreams that are connected now.
    public var upstreamConnections = 0

    public init() {}
}

/// One worker: its own public UDP socket and TCP/TLS listeners (SO_REUSEPORT on the shared ports), its own upstream
/// socket (its own port, so upstream responses and requests for its flows return to it), its own connections,
/// parser, policy and proxy. Runs on a dedicated thread. Streams live in `EdgeWorker+Streams.swift`.
public final class EdgeWorker {
    public let index: Int
    let configuration: WorkerConfiguration
    private let publicSocket: UDPSocket
    private let upstreamSocket: UDPSocket
    let parser: SIPParser
    let proxy: StatelessProxy
    private let batch: DatagramBatch
    let ring: URing?
    /// Fallback path: epoll over the two sockets, and outgoing datagrams batched per socket into one sendmmsg.
    private let readiness: ReadinessPoll?
    private let publicSends: DatagramSendBatch
    private let upstreamSends: DatagramSendBatch
    private let board: MetricsBoard?
    private var lastPublished: UInt64 = 0
    private var validator: SecurityValidator
    var limiter: RateLimiter
    private let mailbox: PolicyMailbox?
    private var policyGeneration: UInt64 = 0
    private let audit: AuditLog
    /// Never rate limited or validated: the configured allow list (any port) and the upstreams (exact address and
    /// port, so a client sharing the core's IP, as on loopback, is still checked).
    private var trusted: [AddressPrefix]
    private let trustedEndpoints: [EndpointAddress]
    public internal(set) var counters = WorkerCounters()
    /// SIP over TCP and TLS (io_uring path only): this worker's listeners on the shared ports and its connections.
    let streamListener: StreamListener?
    let tlsListener: StreamListener?
    var streams: StreamTable
    var tlsContext: TLSContext?
    var lastIdleSweep: UInt64 = 0
    /// Connections toward the upstreams when they are reached over TCP or TLS; empty for UDP.
    var pool: [UpstreamPoolSlot] = []
    /// Client connections open (the pool's are counted apart: clients cannot crowd the core out of the table).
    var clientConnections = 0
    /// Listeners whose accept failed (EMFILE...), re-armed after a pause rather than in a tight loop.
    var pausedAccepts: Set<UInt32> = []
    var acceptsResumeAt: UInt64 = 0
    /// Frames stream messages: the parser's own scanner, so a framing error's reply can copy the scanned headers.
    var framingScanner: MessageScanner { parser.scanner }
    /// Scratch for TLS records on their way out.
    var ciphertext: [UInt8] = []

    /// The data path this worker actually uses (`.auto` resolved).
    public var dataPath: DataPath { ring == nil ? .recvmmsg : .ioUring }

    static let publicTag: UInt32 = 0
    static let upstreamTag: UInt32 = 1
    static let tcpAcceptTag: UInt32 = 2
    static let tlsAcceptTag: UInt32 = 3

    public init(index: Int, configuration: WorkerConfiguration, board: MetricsBoard? = nil,
                mailbox: PolicyMailbox? = nil) throws {
        self.index = index
        self.configuration = configuration
        self.board = board
        self.mailbox = mailbox
        policyGeneration = mailbox?.currentGeneration ?? 0
        publicSocket = try UDPSocket(binding: configuration.listen, reusePort: true)
        let anyAddress = configuration.listen.family == .ipv4
            ? EndpointAddress.parse("0.0.0.0", port: 0)! : EndpointAddress.parse("::", port: 0)!
        upstreamSocket = try UDPSocket(binding: anyAddress, reusePort: false)
        parser = try SIPParser(limits: configuration.parseLimits)
        // Path and Record-Route toward the core name this worker's own upstream port, so requests for the flows it
        // owns come back to it.
        var proxyConfiguration = configuration.proxy
        proxyConfiguration.worker = UInt8(truncatingIfNeeded: index)
        proxyConfiguration.internalPort = upstreamSocket.localAddress.port
        proxy = StatelessProxy(configuration: proxyConfiguration)
        batch = DatagramBatch(capacity: configuration.batchSize)
        validator = SecurityValidator(configuration: configuration.security)
        limiter = RateLimiter(configuration: configuration.rateLimit)
        audit = try AuditLog(destination: configuration.audit, linesPerSecond: configuration.auditLinesPerSecond,
                             worker: index)
        trusted = configuration.rateLimit.allowList
        trustedEndpoints = configuration.proxy.upstreams
        switch configuration.dataPath {
        case .recvmmsg:
            ring = nil
        case .ioUring:
            ring = try URing(options: configuration.uring)
        case .auto:
            ring = try? URing(options: configuration.uring)
        }
        try ring?.armReceive(on: publicSocket, tag: Self.publicTag)
        try ring?.armReceive(on: upstreamSocket, tag: Self.upstreamTag)
        readiness = ring == nil ? try ReadinessPoll([publicSocket, upstreamSocket]) : nil
        // Streams need the ring (accept, receive and send complete there); the fallback path serves UDP only, and
        // cannot reach a core configured over TCP/TLS at all: refuse to start rather than answer every request 430.
        if ring == nil, configuration.proxy.upstreamTransport.isStream {
            throw WorkerSetupError(description: "upstream_transport \(configuration.proxy.upstreamTransport) needs io_uring, "
                                   + "which this system does not allow (use upstream_transport: udp, or allow io_uring)")
        }
        let poolSize = configuration.proxy.upstreamTransport.isStream
            ? configuration.proxy.upstreams.count * max(configuration.upstreamPool.connectionsPerUpstream, 1) : 0
        streams = StreamTable(capacity: min(configuration.streams.maxConnections + poolSize, 65_535))
        tlsContext = mailbox?.read().tls
        if let ring, configuration.streams.tcpEnabled {
            let listener = try StreamListener(binding: configuration.listen)
            try ring.armAccept(on: listener, tag: Self.tcpAcceptTag)
            streamListener = listener
        } else {
            streamListener = nil
        }
        if ring != nil, configuration.proxy.upstreamTransport.isStream {
            for upstream in configuration.proxy.upstreams {
                for _ in 0..<max(configuration.upstreamPool.connectionsPerUpstream, 1) {
                    pool.append(UpstreamPoolSlot(upstream: upstream,
                                                 backoff: configuration.upstreamPool.reconnectMinMilliseconds))
                }
            }
        }
        if let ring, let address = configuration.tlsListen {
            let listener = try StreamListener(binding: address)
            try ring.armAccept(on: listener, tag: Self.tlsAcceptTag)
            tlsListener = listener
        } else {
            tlsListener = nil
        }
        publicSends = DatagramSendBatch(capacity: configuration.batchSize)
        upstreamSends = DatagramSendBatch(capacity: configuration.batchSize)
    }

    /// Steers the public port's SO_REUSEPORT group by source address, so each client IP stays on one worker.
    /// Call on one worker once every worker's socket is bound.
    public func attachSourceSteering(groupSize: Int) throws {
        try publicSocket.attachSourceSteering(groupSize: groupSize)
        try streamListener?.attachSourceSteering(groupSize: groupSize)
        try tlsListener?.attachSourceSteering(groupSize: groupSize)
    }

    /// Runs until `stop` is signalled; checks it at least every 200 ms.
    public func run(until stop: StopSignal) {
        board?.markUp(worker: index, true)
        if let ring {
            runRing(ring, until: stop)
            closeAllStreams()
            drainSends(ring)
        } else {
            runBatches(until: stop)
        }
        publishIfDue(force: true)
        board?.markUp(worker: index, false)
    }

    /// On stop: submit the sends still queued in the ring and wait (at most 200 ms) for them to complete, so the
    /// last answers leave before the ring is torn down. New datagrams are no longer handled.
    private func drainSends(_ ring: URing) {
        for _ in 0..<10 {
            let count = ring.wait(completions: 1, timeoutMicroseconds: 20_000)
            if count == 0 { return }
            for i in 0..<count {
                let event = ring.event(i)
                if event.kind == .sendDone && event.result < 0 { counters.sendFailures += 1 }
                ring.recycle(event)
            }
        }
    }

    /// The safe point between batches: apply a policy posted since the last turn. Rate-limit state survives a
    /// reload unless the limits themselves changed.
    private func applyPolicyIfPosted() {
        guard let mailbox, mailbox.currentGeneration != policyGeneration else { return }
        policyGeneration = mailbox.currentGeneration
        let policy = mailbox.read()
        validator = SecurityValidator(configuration: policy.security)
        if policy.rateLimit != limiter.configuration {
            limiter = RateLimiter(configuration: policy.rateLimit)
        }
        trusted = policy.rateLimit.allowList
        // New TLS handshakes use the reloaded certificate; established sessions keep the one they started with.
        tlsContext = policy.tls
    }

    /// Hands a copy of the counters to the metrics board, at most every 100 ms: never per message.
    private func publishIfDue(force: Bool = false) {
        guard let board else { return }
        let now = MonotonicClock.milliseconds()
        guard force || now - lastPublished >= 100 else { return }
        lastPublished = now
        board.publish(worker: index, counters.snapshot())
    }

    // MARK: io_uring path

    private func runRing(_ ring: URing, until stop: StopSignal) {
        let options = configuration.uring
        var busy = false
        while !stop.isStopped {
            // Idle: sleep until the first packet (checking for stop every 200 ms). Busy: collect a batch, waiting at
            // most batchWaitMicroseconds, so a loaded worker wakes per batch rather than per packet.
            let count = busy && options.batchWaitMicroseconds > 0
                ? ring.wait(completions: options.batchSize, timeoutMicroseconds: options.batchWaitMicroseconds)
                : ring.wait(completions: 1, timeoutMicroseconds: 200_000)
            busy = count > 0
            publishIfDue()
            applyPolicyIfPosted()
            sweepIdleStreams()
            maintainUpstreamPool()
            resumePausedAccepts()
            for i in 0..<count {
                let event = ring.event(i)
                switch event.kind {
                case .accepted:
                    accept(event)
                case .streamData:
                    receiveStream(event)
                case .streamSent:
                    streamSent(event)
                case .connected:
                    upstreamConnected(event)
                case .datagram:
                    counters.received += 1
                    if event.truncated {
                        counters.truncated += 1
                    } else if let payload = event.payload, let source = event.source {
                        if Self.isKeepalive(payload) {
                            counters.keepalives += 1
                        } else {
                            handle(payload, from: .udp(source))
                        }
                    }
                case .invalidDatagram:
                    counters.truncated += 1
                case .outOfBuffers:
                    counters.receiveBufferExhaustion += 1
                case .receiveError:
                    break
                case .sendDone:
                    if event.result < 0 { counters.sendFailures += 1 }
                }
                ring.recycle(event)
                if event.needsRearm {
                    rearm(event)
                }
            }
        }
    }

    /// A multishot request ended (the kernel does that under pressure): queue it again.
    private func rearm(_ event: URingEvent) {
        guard let ring else { return }
        switch event.kind {
        case .accepted:
            if event.result < 0 {
                // Out of descriptors (EMFILE) or similar: re-arming at once would fail the same way in a tight
                // loop. Try again on a later loop turn.
                pausedAccepts.insert(event.socketTag)
                acceptsResumeAt = MonotonicClock.milliseconds() + 100
            } else {
                armAccept(tag: event.socketTag)
            }
        case .streamData:
            rearmStream(event)
        case .datagram, .invalidDatagram, .outOfBuffers, .receiveError:
            let socket = event.socketTag == Self.publicTag ? publicSocket : upstreamSocket
            try? ring.armReceive(on: socket, tag: event.socketTag)
        case .sendDone, .streamSent, .connected:
            break
        }
    }

    /// Arms the multishot accept of a listener; a failure is retried on a later loop turn, never lost.
    func armAccept(tag: UInt32) {
        guard let ring, let listener = tag == Self.tlsAcceptTag ? tlsListener : streamListener else { return }
        do {
            try ring.armAccept(on: listener, tag: tag)
        } catch {
            pausedAccepts.insert(tag)
            acceptsResumeAt = MonotonicClock.milliseconds() + 100
        }
    }

    /// Re-arms accepts paused after an error, once their pause is over.
    func resumePausedAccepts() {
        guard !pausedAccepts.isEmpty, MonotonicClock.milliseconds() >= acceptsResumeAt else { return }
        let tags = pausedAccepts
        pausedAccepts.removeAll()
        for tag in tags { armAccept(tag: tag) }
    }

    // MARK: recvmmsg path

    private func runBatches(until stop: StopSignal) {
        guard let readiness else { return }
        while !stop.isStopped {
            let ready = readiness.wait(timeoutMilliseconds: 200)
            if ready & 1 != 0 { drain(publicSocket) }
            if ready & 2 != 0 { drain(upstreamSocket) }
            publishIfDue()
            applyPolicyIfPosted()
        }
    }

    private func drain(_ socket: UDPSocket) {
        // Bounded: at most 16 batches per wake-up, so one busy socket cannot starve the other.
        for _ in 0..<16 {
            let count = batch.receive(from: socket)
            if count == 0 { return }
            for i in 0..<count {
                counters.received += 1
                if batch.isTruncated(i) {
                    counters.truncated += 1
                    continue
                }
                batch.withDatagram(i) { bytes, source in
                    guard let source else { return }
                    if Self.isKeepalive(bytes) {
                        counters.keepalives += 1
                    } else {
                        handle(bytes, from: .udp(source))
                    }
                }
            }
            // One sendmmsg per socket for everything this batch produced.
            counters.sendFailures += publicSends.flush(on: publicSocket) + upstreamSends.flush(on: upstreamSocket)
        }
    }

    // MARK: Both paths

    /// Upstreams (exact address and port) and the allow list are never rate limited or validated.
    func isTrusted(_ source: EndpointAddress) -> Bool {
        trustedEndpoints.contains(source) || trusted.contains { $0.contains(source) }
    }

    /// One message from `flow` (a datagram, or one framed out of a stream).
    func handle(_ bytes: PacketBytes, from flow: Flow) {
        let source = flow.address
        let started = MonotonicClock.nanoseconds()
        defer { counters.recordLatency(nanoseconds: MonotonicClock.nanoseconds() &- started) }
        let now = started / 1_000_000
        let isTrusted = isTrusted(source)
        let message: SIPMessage
        do throws(SIPParseError) {
            message = try parser.parse(bytes)
        } catch {
            refuseUnparsed(bytes, error: error, from: flow, trusted: isTrusted, now: now)
            return
        }
        if message.isRequest {
            counters.requestsByMethod[Int(flow.transport.rawValue)][Int(message.method.known.rawValue)] += 1
        } else {
            counters.responses[Int(flow.transport.rawValue)] += 1
        }
        if !isTrusted {
            if message.isRequest {
                switch limiter.check(source, isRegister: message.method.known == .register, now: now) {
                case .allow:
                    break
                case .limited:
                    refuse(message, verdict: validator.verdict(for: .rateLimited), from: flow, now: now,
                           retryAfter: limiter.configuration.retryAfterSeconds)
                    return
                case .banned:
                    refuse(message, verdict: validator.verdict(for: .banned), from: flow, now: now)
                    return
                }
            }
            let verdict = validator.validate(message, fromPublicSide: true)
            if verdict != .accept {
                refuse(message, verdict: verdict, from: flow, now: now)
                return
            }
        }
        switch proxy.process(message, from: flow) {
        case .forward(let destination):
            if deliver(proxy.output, to: destination) {
                counters.forwarded += 1
            } else if !pool.isEmpty, proxy.isUpstream(destination.address) {
                upstreamUnavailable(message, from: flow)
            } else if destination.transport.isStream {
                flowFailed(message, from: flow)
            }
        case .reply(_, let destination):
            if deliver(proxy.output, to: destination) { counters.replied += 1 }
        case .drop(let reason):
            counters.dropped[reason, default: 0] += 1
        }
    }

    /// Sends `bytes` down `flow`: a UDP address (through the upstream socket when it is an upstream), or one of
    /// this worker's connections. False when the flow is gone (or belongs to another worker).
    func deliver(_ bytes: [UInt8], to flow: Flow) -> Bool {
        if !pool.isEmpty, proxy.isUpstream(flow.address) {
            guard let connection = pooledConnection(to: flow.address) else { return false }
            return sendOnStream(connection, bytes[...])
        }
        guard flow.transport.isStream else {
            return send(bytes, to: flow.address, viaUpstreamSocket: proxy.isUpstream(flow.address))
        }
        guard flow.worker == UInt8(truncatingIfNeeded: index), let connection = streams.connection(flow.connection),
            connection.peer == flow.address
        else { return false }
        return sendOnStream(connection, bytes[...])
    }

    /// RFC 5626 §5.3: a request for a flow that no longer exists is answered 430 Flow Failed (the registrar then
    /// tries the user's other flows); responses and ACKs are dropped.
    private func flowFailed(_ message: SIPMessage, from source: Flow) {
        counters.dropped[.flowGone, default: 0] += 1
        guard message.isRequest, message.method.known != .ack else { return }
        proxy.buildReply(to: message, status: 430, reason: "Flow Failed")
        if deliver(proxy.output, to: source) { counters.replied += 1 }
    }

    /// No pooled connection to the core is up (it is down or still being dialled): 503 with Retry-After, so the
    /// client retries rather than waits for a timeout (RFC 3261 §21.5.4).
    private func upstreamUnavailable(_ message: SIPMessage, from source: Flow) {
        counters.sendFailures += 1
        guard message.isRequest, message.method.known != .ack else { return }
        proxy.buildReply(to: message, status: 503, reason: "Service Unavailable", detail: "upstream not connected",
                         retryAfter: 1)
        if deliver(proxy.output, to: source) { counters.replied += 1 }
    }

    /// A policy refusal: count, audit, and answer requests (never ACKs) when the verdict says so.
    private func refuse(_ message: SIPMessage, verdict: Verdict, from flow: Flow, now: UInt64,
                        retryAfter: UInt32? = nil) {
        guard let rule = verdict.rule else { return }
        counters.violations[rule.ordinal] += 1
        var status: UInt16?
        if case .reject(let code, let reason, _) = verdict, message.isRequest, message.method.known != .ack {
            proxy.buildReply(to: message, status: code, reason: reason.text, retryAfter: retryAfter)
            if deliver(proxy.output, to: flow) { counters.replied += 1 }
            status = code
        }
        audit.record(rule: rule, action: status == nil ? "drop" : "reject", status: status, source: flow.address,
                     method: message.string(message.method.span), callID: message.string(message.callID), now: now)
    }

    /// A message that did not parse: a request gets 400 (505 for another SIP version) naming the problem, when
    /// its lines allow addressing a response and the source is not flooding; anything else is dropped.
    func refuseUnparsed(_ bytes: PacketBytes, error: SIPParseError, from flow: Flow,
                        trusted: Bool, now: UInt64) {
        counters.parseErrors += 1
        counters.parseErrorsByCode[SIPParseError.Code.allCases.firstIndex(of: error.code)!] += 1
        counters.violations[SecurityRule.malformed.ordinal] += 1
        var status: UInt16?
        let isRequest = bytes.count > 4 && !bytes.equalsIgnoringCase(ByteSpan(offset: 0, length: 4), "SIP/")
            && !bytes.equals(ByteSpan(offset: 0, length: 4), "ACK ")
        let allowed = trusted || limiter.check(flow.address, isRegister: false, now: now) == .allow
        if isRequest, allowed, validator.configuration.action(for: .malformed) == .reject,
            proxy.buildReply(toUnparsed: bytes, headers: parser.scanner.headers, status: error.code.responseStatus,
                             reason: error.code == .unsupportedSIPVersion ? "Version Not Supported" : "Bad Request",
                             detail: error.code.explanation) {
            if deliver(proxy.output, to: flow) { counters.replied += 1 }
            status = error.code.responseStatus
        }
        audit.record(rule: .malformed, action: status == nil ? "drop" : "reject", status: status, source: flow.address,
                     method: nil, callID: "parse error: \(error.code.rawValue)", now: now)
    }

    /// Sends through the ring when there is one and it has room (else directly); on the fallback path, queues
    /// into the socket's sendmmsg batch.
    private func send(_ bytes: [UInt8], to destination: EndpointAddress, viaUpstreamSocket: Bool) -> Bool {
        let socket = viaUpstreamSocket ? upstreamSocket : publicSocket
        if let ring, ring.send(bytes, on: socket, tag: viaUpstreamSocket ? Self.upstreamTag : Self.publicTag,
                               to: destination) {
            return true
        }
        if ring == nil {
            let sends = viaUpstreamSocket ? upstreamSends : publicSends
            counters.sendFailures += sends.append(bytes, to: destination, on: socket)
            return true
        }
        if socket.send(bytes, to: destination) { return true }
        counters.sendFailures += 1
        return false
    }

    /// RFC 5626 keep-alive: a datagram of only CRLFs.
    static func isKeepalive(_ bytes: PacketBytes) -> Bool {
        guard bytes.count > 0, bytes.count <= 4 else { return false }
        for i in 0..<bytes.count where bytes[i] != 0x0D && bytes[i] != 0x0A { return false }
        return true
    }
}
