public import SIPBytes
public import SIPParsing
public import SIPProxyCore
public import SIPSecurity
public import SIPMetrics
public import SIPUring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// How a worker moves datagrams.
public enum DataPath: String, Sendable, CaseIterable {
    /// io_uring when the kernel allows it, else recvmmsg.
    case auto
    /// io_uring: multishot recvmsg into provided buffers, sends batched through the ring.
    case ioUring = "io-uring"
    /// epoll + recvmmsg + sendmmsg: works wherever io_uring is disabled or filtered (containers, seccomp).
    case recvmmsg
}

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
    /// Requests by method (indexed like `SIPMethod.Known.allCases`) and responses.
    public var requestsByMethod = [Int](repeating: 0, count: SIPMethod.Known.allCases.count)
    public var responses = 0
    /// In-proxy time per message, per `latencyBucketBounds` (not cumulative; the last is +Inf).
    public var latencyBuckets = [Int](repeating: 0, count: latencyBucketBounds.count + 1)
    public var latencyNanoseconds: UInt64 = 0

    /// The snapshot published for the metrics endpoint.
    public func snapshot() -> WorkerSnapshot {
        var snapshot = WorkerSnapshot()
        for (index, method) in SIPMethod.Known.allCases.enumerated() where requestsByMethod[index] > 0 {
            snapshot.messages[method == .extension ? "other" : method.name] = requestsByMethod[index]
        }
        if responses > 0 { snapshot.messages["response"] = responses }
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

    public init() {}
}

/// One UDP worker: its own public socket (SO_REUSEPORT on the shared port), its own upstream socket (its own port,
/// so upstream responses return to it), its own parser and proxy. Runs on a dedicated thread.
public final class UDPWorker {
    public let index: Int
    private let configuration: WorkerConfiguration
    private let publicSocket: UDPSocket
    private let upstreamSocket: UDPSocket
    private let parser: SIPParser
    private let proxy: StatelessProxy
    private let batch: DatagramBatch
    private let ring: URing?
    /// Fallback path: epoll over the two sockets, and outgoing datagrams batched per socket into one sendmmsg.
    private let readiness: ReadinessPoll?
    private let publicSends: DatagramSendBatch
    private let upstreamSends: DatagramSendBatch
    private let board: MetricsBoard?
    private var lastPublished: UInt64 = 0
    private var validator: SecurityValidator
    private var limiter: RateLimiter
    private let mailbox: PolicyMailbox?
    private var policyGeneration: UInt64 = 0
    private let audit: AuditLog
    /// Never rate limited or validated: the configured allow list (any port) and the upstreams (exact address and
    /// port, so a client sharing the core's IP, as on loopback, is still checked).
    private var trusted: [AddressPrefix]
    private let trustedEndpoints: [EndpointAddress]
    public private(set) var counters = WorkerCounters()

    /// The data path this worker actually uses (`.auto` resolved).
    public var dataPath: DataPath { ring == nil ? .recvmmsg : .ioUring }

    private static let publicTag: UInt32 = 0
    private static let upstreamTag: UInt32 = 1

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
        proxy = StatelessProxy(configuration: configuration.proxy)
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
        publicSends = DatagramSendBatch(capacity: configuration.batchSize)
        upstreamSends = DatagramSendBatch(capacity: configuration.batchSize)
    }

    /// Steers the public port's SO_REUSEPORT group by source address, so each client IP stays on one worker.
    /// Call on one worker once every worker's socket is bound.
    public func attachSourceSteering(groupSize: Int) throws {
        try publicSocket.attachSourceSteering(groupSize: groupSize)
    }

    /// Runs until `stop` is signalled; checks it at least every 200 ms.
    public func run(until stop: StopSignal) {
        board?.markUp(worker: index, true)
        if let ring {
            runRing(ring, until: stop)
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
            for i in 0..<count {
                let event = ring.event(i)
                switch event.kind {
                case .datagram:
                    counters.received += 1
                    if event.truncated {
                        counters.truncated += 1
                    } else if let payload = event.payload, let source = event.source {
                        handle(payload, from: source)
                    }
                case .invalidDatagram:
                    counters.truncated += 1
                case .outOfBuffers:
                    counters.receiveBufferExhaustion += 1
                case .receiveError:
                    break
                case .sendDone:
                    if event.result < 0 { counters.sendFailures += 1 }
                case .accepted, .streamData, .streamSent, .connected:
                    break  // this worker arms no stream requests (TCP lands with the stream worker)
                }
                ring.recycle(event)
                if event.needsRearm {
                    let socket = event.socketTag == Self.publicTag ? publicSocket : upstreamSocket
                    try? ring.armReceive(on: socket, tag: event.socketTag)
                }
            }
        }
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
                    if let source { handle(bytes, from: source) }
                }
            }
            // One sendmmsg per socket for everything this batch produced.
            counters.sendFailures += publicSends.flush(on: publicSocket) + upstreamSends.flush(on: upstreamSocket)
        }
    }

    // MARK: Both paths

    private func handle(_ bytes: PacketBytes, from source: EndpointAddress) {
        if Self.isKeepalive(bytes) {
            counters.keepalives += 1
            return
        }
        let started = MonotonicClock.nanoseconds()
        defer { counters.recordLatency(nanoseconds: MonotonicClock.nanoseconds() &- started) }
        let now = started / 1_000_000
        let isTrusted = trustedEndpoints.contains(source) || trusted.contains { $0.contains(source) }
        let message: SIPMessage
        do throws(SIPParseError) {
            message = try parser.parse(bytes)
        } catch {
            refuseUnparsed(bytes, error: error, from: source, trusted: isTrusted, now: now)
            return
        }
        if message.isRequest {
            counters.requestsByMethod[Int(message.method.known.rawValue)] += 1
        } else {
            counters.responses += 1
        }
        if !isTrusted {
            if message.isRequest {
                switch limiter.check(source, isRegister: message.method.known == .register, now: now) {
                case .allow:
                    break
                case .limited:
                    refuse(message, verdict: validator.verdict(for: .rateLimited), from: source, now: now,
                           retryAfter: limiter.configuration.retryAfterSeconds)
                    return
                case .banned:
                    refuse(message, verdict: validator.verdict(for: .banned), from: source, now: now)
                    return
                }
            }
            let verdict = validator.validate(message, fromPublicSide: true)
            if verdict != .accept {
                refuse(message, verdict: verdict, from: source, now: now)
                return
            }
        }
        switch proxy.process(message, source: source) {
        case .forward(let destination):
            let toUpstream = proxy.side(of: destination) == .upstream
            if send(proxy.output, to: destination, viaUpstreamSocket: toUpstream) {
                counters.forwarded += 1
            }
        case .reply(_, let destination):
            if send(proxy.output, to: destination, viaUpstreamSocket: false) { counters.replied += 1 }
        case .drop(let reason):
            counters.dropped[reason, default: 0] += 1
        }
    }

    /// A policy refusal: count, audit, and answer requests (never ACKs) when the verdict says so.
    private func refuse(_ message: SIPMessage, verdict: Verdict, from source: EndpointAddress, now: UInt64,
                        retryAfter: UInt32? = nil) {
        guard let rule = verdict.rule else { return }
        counters.violations[rule.ordinal] += 1
        var status: UInt16?
        if case .reject(let code, let reason, _) = verdict, message.isRequest, message.method.known != .ack {
            proxy.buildReply(to: message, status: code, reason: reason.text, retryAfter: retryAfter)
            if send(proxy.output, to: source, viaUpstreamSocket: false) { counters.replied += 1 }
            status = code
        }
        audit.record(rule: rule, action: status == nil ? "drop" : "reject", status: status, source: source,
                     method: message.string(message.method.span), callID: message.string(message.callID), now: now)
    }

    /// A message that did not parse: a request gets 400 (505 for another SIP version) naming the problem, when
    /// its lines allow addressing a response and the source is not flooding; anything else is dropped.
    private func refuseUnparsed(_ bytes: PacketBytes, error: SIPParseError, from source: EndpointAddress,
                                trusted: Bool, now: UInt64) {
        counters.parseErrors += 1
        counters.parseErrorsByCode[SIPParseError.Code.allCases.firstIndex(of: error.code)!] += 1
        counters.violations[SecurityRule.malformed.ordinal] += 1
        var status: UInt16?
        let isRequest = bytes.count > 4 && !bytes.equalsIgnoringCase(ByteSpan(offset: 0, length: 4), "SIP/")
            && !bytes.equals(ByteSpan(offset: 0, length: 4), "ACK ")
        let allowed = trusted || limiter.check(source, isRegister: false, now: now) == .allow
        if isRequest, allowed, validator.configuration.action(for: .malformed) == .reject,
            proxy.buildReply(toUnparsed: bytes, headers: parser.scanner.headers, status: error.code.responseStatus,
                             reason: error.code == .unsupportedSIPVersion ? "Version Not Supported" : "Bad Request",
                             detail: error.code.explanation) {
            if send(proxy.output, to: source, viaUpstreamSocket: false) { counters.replied += 1 }
            status = error.code.responseStatus
        }
        audit.record(rule: .malformed, action: status == nil ? "drop" : "reject", status: status, source: source,
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
