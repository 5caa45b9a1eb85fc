import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSettings
import SIPSecurity
import SIPUring
import SIPMetrics

/// Where the pipeline's output goes: the worker's sockets, connections and upstream pool. The pipeline decides,
/// the sink moves bytes; tests drive the pipeline with a sink that records instead.
protocol FlowSink: AnyObject {
    /// Sends `bytes` down `flow` (copied where they go: borrowed only for the call); false when the flow is gone (a
    /// closed connection, another worker's, no pooled connection up).
    func deliver(_ bytes: PacketBytes, to flow: Flow) -> Bool
    /// True when `upstream` is reached over pooled TCP/TLS connections (a failed delivery there means none is up).
    func isPooled(_ upstream: EndpointAddress) -> Bool
    /// A response from an upstream to one of the edge's own health probes (never forwarded).
    func probeAnswered(callID: String, status: Int)
    /// A request sent to `upstream` went unanswered or could not be sent (transaction mode): a failed probe.
    func upstreamFailed(_ upstream: EndpointAddress)
}

extension FlowSink {
    /// Sends the proxy's output (``StatelessProxy/output``) down `flow`.
    func deliver(_ bytes: borrowing ScratchBytes, to flow: Flow) -> Bool {
        bytes.withPacketBytes { deliver($0, to: flow) }
    }

    /// Sends stored bytes (the transaction layer's) down `flow`.
    func deliver(_ bytes: [UInt8], to flow: Flow) -> Bool {
        bytes.withPacketBytes { deliver($0, to: flow) }
    }
}

/// What happens to one message, whatever carried it: parse -> policy (rate limit, validator) -> proxy core ->
/// delivery, with every refusal counted, audited and answered as its rule says. One per worker, on its thread.
final class MessagePipeline {
    let parser: SIPParser
    let proxy: StatelessProxy
    private(set) var validator: SecurityValidator
    private(set) var limiter: RateLimiter
    private let audit: AuditLog
    /// Audit lines lost (over the cap, or a failed write), for the metrics.
    var auditLinesLost: Int { audit.linesLost }
    /// Transaction mode: the stateful layer in front of the proxy core (nil: stateless).
    let transactions: TransactionLayer?
    /// Never rate limited or validated: the configured allow list (any port) and the upstreams (exact address and
    /// port, so a client sharing the core's IP, as on loopback, is still checked).
    private var allowList: [AddressPrefix]
    var counters = WorkerCounters()
    /// Monotonic nanoseconds at which the next message's handling starts: the worker sets it when it wakes, and
    /// each message's end time is the next one's start, so timing a message costs one clock read, not two.
    var clock: UInt64 = MonotonicClock.nanoseconds()
    /// HEP capture (nil: off).
    var capture: CaptureTap?
    /// Whether the message being handled was refused, for its capture.
    private var handledWasRefused = false
    /// When client requests were handled, for the core's response time.
    private var responseClock = ResponseClock()

    init(parser: SIPParser, proxy: StatelessProxy, security: SecurityConfiguration,
         rateLimit: RateLimitConfiguration, audit: AuditLog, transactions: TransactionSettings = TransactionSettings()) {
        self.parser = parser
        self.proxy = proxy
        self.transactions = transactions.mode == .transaction
            ? TransactionLayer(settings: transactions, proxy: proxy, now: MonotonicClock.milliseconds()) : nil
        validator = SecurityValidator(configuration: security)
        limiter = RateLimiter(configuration: rateLimit)
        self.audit = audit
        allowList = rateLimit.allowList
    }

    /// Bans the limiter started since the last call, for other edges.
    func takeStartedBans() -> [RateLimiter.StartedBan] {
        limiter.startedBans.isEmpty ? [] : limiter.takeStartedBans()
    }

    /// Shared rate limits: count requests per source, report the busiest, apply the edges' verdicts.
    var countsSources: Bool {
        get { limiter.countsSources }
        set { limiter.countsSources = newValue }
    }

    func takeBusiestSources(limit: Int) -> [RateLimiter.SourceCount] {
        limiter.takeBusiestSources(limit: limit)
    }

    func limitShared(_ source: RateLimiter.SourceCount, for milliseconds: UInt64, now: UInt64) {
        limiter.limitShared(source, for: milliseconds, now: now)
    }

    /// A ban another edge started.
    func impose(_ ban: RateLimiter.StartedBan, now: UInt64) {
        limiter.impose(ban, now: now)
    }

    /// A reloaded policy, applied between batches. Rate-limit state survives unless the limits themselves changed.
    func apply(security: SecurityConfiguration, rateLimit: RateLimitConfiguration) {
        validator = SecurityValidator(configuration: security)
        if rateLimit != limiter.configuration {
            let countsSources = limiter.countsSources
            limiter = RateLimiter(configuration: rateLimit)
            limiter.countsSources = countsSources
        }
        allowList = rateLimit.allowList
    }

    /// Upstreams (exact address and port) and the allow list are never rate limited or validated.
    func isTrusted(_ source: EndpointAddress) -> Bool {
        proxy.isUpstream(source) || isAllowListed(source)
    }

    private func isAllowListed(_ source: EndpointAddress) -> Bool {
        // Most edges have no allow list: asked first, that costs no retain and release of the array per message.
        !allowList.isEmpty && allowList.contains { $0.contains(source) }
    }

    /// Whether a new connection from `peer` may be taken: it counts as a request for the source's rate limit, so
    /// one address opening connections in a loop is throttled and banned like one sending requests in a loop.
    func admitsConnection(from peer: EndpointAddress, now: UInt64) -> Bool {
        isTrusted(peer) || limiter.check(peer, isRegister: false, now: now) == .allow
    }

    /// One message from `flow` (a datagram, or one framed out of a stream).
    func handle<Sink: FlowSink>(_ bytes: PacketBytes, from flow: Flow, sink: Sink) {
        counters.handled += 1
        let fromUpstream = proxy.isUpstream(flow.address)
        guard let capture else {
            route(bytes, from: flow, fromUpstream: fromUpstream, sink: sink)
            return
        }
        // Captured after it was handled, stamped with its arrival time, so the capture can say whether it was
        // refused (the replies it caused are captured as they are sent, with their own times).
        let arrived = WallClock.now()
        handledWasRefused = false
        capture.begin()
        route(bytes, from: flow, fromUpstream: fromUpstream, sink: sink)
        capture.end(bytes, from: flow, isUpstream: fromUpstream, refused: handledWasRefused, time: arrived)
    }

    private func route<Sink: FlowSink>(_ bytes: PacketBytes, from flow: Flow, fromUpstream: Bool, sink: Sink) {
        let source = flow.address
        let started = clock
        defer {
            clock = MonotonicClock.nanoseconds()
            counters.recordLatency(nanoseconds: clock &- started)
        }
        let now = started / 1_000_000
        let isTrusted = fromUpstream || isAllowListed(source)
        let message: SIPMessage
        do throws(SIPParseError) {
            message = try parser.parse(bytes)
        } catch {
            refuseUnparsed(bytes, error: error, from: flow, trusted: isTrusted, now: now, sink: sink)
            return
        }
        capture?.identify(message.bytes, callID: message.callID)
        if !message.isRequest, fromUpstream {
            counters.countUpstreamResponse(from: source, status: message.statusLine!.statusCode,
                                           elapsedNanoseconds: responseClock.answered(message, at: started))
        }
        if !message.isRequest, isProbeResponse(message, from: source) {
            sink.probeAnswered(callID: message.string(message.callID), status: Int(message.statusLine!.statusCode))
            return
        }
        if message.isRequest {
            counters.requestsByMethod[Int(flow.transport.rawValue)][Int(message.method.known.rawValue)] += 1
        } else {
            counters.responses[Int(flow.transport.rawValue)] += 1
        }
        if !isTrusted {
            if message.isRequest {
                let isRegister = message.method.known == .register
                var decision = limiter.check(source, isRegister: isRegister, now: now)
                if case .banned = decision, proxy.routeTokenFlow(of: message) == flow {
                    // A ban is per source address, and behind a NAT that is a whole office. A request whose Route
                    // carries our flow token for the very flow it came on belongs to a client in a dialog we
                    // carry (forging the token takes our key; replaying it from elsewhere fails the flow
                    // comparison), so it is not refused with its source; that flow is counted on its own
                    // instead, so one that floods is limited and banned by itself. Only during a ban: the token
                    // check costs an HMAC, which the common path does not pay.
                    decision = limiter.checkFlow(source, isRegister: isRegister, now: now)
                }
                switch decision {
                case .allow:
                    break
                case .limited:
                    refuse(message, verdict: validator.verdict(for: .rateLimited), from: flow, now: now,
                           retryAfter: limiter.configuration.retryAfterSeconds, sink: sink)
                    return
                case .banned(let step):
                    refuse(message, verdict: validator.verdict(for: .banned), from: flow, now: now, banStep: step,
                           sink: sink)
                    return
                }
            }
        }
        // RFC 3261 §16.3 before the edge policy: a request with Max-Forwards 0 gets 483 whatever else it carries.
        if message.isRequest, let refusal = proxy.preflight(message, from: flow) {
            handledWasRefused = true
            switch refusal {
            case .reply(_, let destination):
                if sink.deliver(proxy.output, to: destination) { counters.replied += 1 }
            case .drop(let reason):
                counters.count(reason)
            case .forward:
                break
            }
            return
        }
        if !isTrusted {
            let verdict = validator.validate(message, fromPublicSide: true, overStream: flow.transport.isStream)
            if verdict != .accept {
                refuse(message, verdict: verdict, from: flow, now: now, sink: sink)
                return
            }
        }
        if message.isRequest, !fromUpstream, message.method.known != .ack {
            responseClock.started(message, at: started)
        }
        if let transactions {
            if message.isRequest, !fromUpstream,
                transactions.handleRequest(message, from: flow, now: now, sink: sink) {
                return
            }
            if !message.isRequest, fromUpstream,
                transactions.handleResponse(message, from: flow, now: now, sink: sink) {
                return
            }
        }
        switch proxy.process(message, from: flow, attempt: ForwardAttempt(), preflighted: true) {
        case .forward(let destination):
            if sink.deliver(proxy.output, to: destination) {
                counters.forwarded += 1
            } else if sink.isPooled(destination.address) {
                upstreamUnavailable(message, from: flow, sink: sink)
            } else if destination.transport.isStream {
                flowFailed(message, from: flow, sink: sink)
            }
        case .reply(_, let destination):
            if sink.deliver(proxy.output, to: destination) { counters.replied += 1 }
        case .drop(let reason):
            counters.count(reason)
        }
    }

    /// A response from an upstream whose Call-ID is one of our probes' (a prefix compare, only on responses).
    private func isProbeResponse(_ message: SIPMessage, from source: EndpointAddress) -> Bool {
        let prefix = StatelessProxy.probeCallIDPrefix
        let callID = message.callID
        guard callID.count > prefix.utf8CodeUnitCount else { return false }
        return message.bytes.equals(ByteSpan(offset: callID.start, length: prefix.utf8CodeUnitCount), prefix)
            && proxy.isUpstream(source)
    }

    /// A message that did not parse: a request gets 400 (505 for another SIP version) naming the problem, when
    /// its lines allow addressing a response and the source is not flooding; anything else is dropped.
    func refuseUnparsed<Sink: FlowSink>(_ bytes: PacketBytes, error: SIPParseError, from flow: Flow, trusted: Bool,
                                        now: UInt64, sink: Sink) {
        handledWasRefused = true
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
            if sink.deliver(proxy.output, to: flow) { counters.replied += 1 }
            status = error.code.responseStatus
        }
        audit.record(rule: .malformed, action: status == nil ? "drop" : "reject", status: status, source: flow.address,
                     method: nil, callID: "parse error: \(error.code.rawValue)", now: now)
    }

    /// RFC 5626 §5.3: a request for a flow that no longer exists is answered 430 Flow Failed (the registrar then
    /// tries the user's other flows); responses and ACKs are dropped.
    private func flowFailed<Sink: FlowSink>(_ message: SIPMessage, from source: Flow, sink: Sink) {
        counters.count(DropReason.flowGone)
        guard message.isRequest, message.method.known != .ack else { return }
        proxy.buildReply(to: message, status: 430, reason: "Flow Failed")
        if sink.deliver(proxy.output, to: source) { counters.replied += 1 }
    }

    /// No pooled connection to the core is up (it is down or still being dialled): 503 with Retry-After, so the
    /// client retries rather than waits for a timeout (RFC 3261 §21.5.4).
    private func upstreamUnavailable<Sink: FlowSink>(_ message: SIPMessage, from source: Flow, sink: Sink) {
        counters.sendFailures += 1
        guard message.isRequest, message.method.known != .ack else { return }
        proxy.buildReply(to: message, status: 503, reason: "Service Unavailable", detail: "upstream not connected",
                         retryAfter: 1)
        if sink.deliver(proxy.output, to: source) { counters.replied += 1 }
    }

    /// A policy refusal: count, audit, and answer requests (never ACKs) when the verdict says so.
    private func refuse<Sink: FlowSink>(_ message: SIPMessage, verdict: Verdict, from flow: Flow, now: UInt64,
                                        retryAfter: UInt32? = nil, banStep: Int? = nil, sink: Sink) {
        guard let rule = verdict.rule else { return }
        handledWasRefused = true
        counters.violations[rule.ordinal] += 1
        var status: UInt16?
        if case .reject(let code, let reason, _) = verdict, message.isRequest, message.method.known != .ack {
            proxy.buildReply(to: message, status: code, reason: reason.text, retryAfter: retryAfter)
            if sink.deliver(proxy.output, to: flow) { counters.replied += 1 }
            status = code
        }
        audit.record(rule: rule, action: status == nil ? "drop" : "reject", status: status, source: flow.address,
                     method: message.string(message.method.span), callID: message.string(message.callID), now: now,
                     ban: banStep.map { (step: $0, milliseconds: limiter.configuration.banDuration(step: $0)) })
    }
}

extension MessagePipeline {
    /// Transaction mode: fires the transaction timers due at `now`.
    func fireTransactionTimers<Sink: FlowSink>(now: UInt64, sink: Sink) {
        transactions?.fireTimers(now: now, sink: sink)
    }

    /// The counters to publish: the pipeline's with the transaction layer's (its forwards, replies and drops added
    /// to the pipeline's own).
    var publishedCounters: WorkerCounters {
        var all = counters
        guard let transactions else { return all }
        all.transactions = transactions.counters
        all.transactions.messageBytes = transactions.messageBytesInUse
        all.forwarded += transactions.counters.forwarded
        all.replied += transactions.counters.replied
        for index in all.dropped.indices { all.dropped[index] += transactions.counters.dropped[index] }
        return all
    }
}
