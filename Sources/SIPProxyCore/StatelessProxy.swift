public import SIPBytes
public import SIPParsing

/// Which side of the edge a message came from.
public enum Side: Sendable {
    /// The public side: user agents.
    case client
    /// The core behind us (Kamailio).
    case upstream
}

/// Why a message was dropped without a reply. Raw values are metric labels.
public enum DropReason: String, Sendable, CaseIterable {
    /// A response whose top Via is not ours.
    case responseNotForUs = "response_not_for_us"
    /// A response with no Via left after ours.
    case responseWithoutNextHop = "response_without_next_hop"
    /// A Via or URI names a host we would have to resolve; an edge never does DNS on the data path.
    case unresolvableDestination = "unresolvable_destination"
    /// An ACK that would need a reply (ACKs are never answered).
    case unanswerableAck = "unanswerable_ack"
    /// No upstream is up (an ACK: other requests are answered 503).
    case noUpstream = "no_upstream"
    /// A response for a stream client whose connection is gone (responses cannot be answered).
    case flowGone = "flow_gone"
    /// A response from the public side whose next hop is not an upstream: clients only answer the core.
    case responseNotForUpstream = "response_not_for_upstream"
}

/// Which try of a client request a forward is: the first (the default), or a failover after upstreams that did not
/// answer. Stateless forwarding only ever makes the first.
public struct ForwardAttempt: Sendable, Equatable {
    /// 0 for the first try; each later try gets its own Via branch.
    public var number: Int
    /// Members of ``StatelessProxy/upstreams`` already tried (bit i: member i), skipped by the choice.
    public var excluded: UInt64
    /// Send there, whatever the choice would be: a CANCEL follows its INVITE's try (RFC 3261 §16.10).
    public var upstream: EndpointAddress?

    public init(number: Int = 0, excluded: UInt64 = 0, upstream: EndpointAddress? = nil) {
        self.number = number
        self.excluded = excluded
        self.upstream = upstream
    }
}

/// What to do with a message, decided by ``StatelessProxy/process(_:from:)``.
public enum ForwardDecision: Equatable, Sendable {
    /// Send ``StatelessProxy/output`` down this flow (an upstream's address, a client's UDP address or connection).
    case forward(to: Flow)
    /// Send ``StatelessProxy/output`` (a locally generated response) back down this flow.
    case reply(status: UInt16, to: Flow)
    case drop(DropReason)
}

/// Settings of the stateless proxy core.
public struct ProxyConfiguration: Sendable {
    /// Host and port written into our Via and Record-Route headers (what peers reach us at).
    public var advertised: EndpointAddress
    /// Where client requests go (Kamailio in outbound-proxy mode), as the worker starts: Call-ID rendezvous
    /// hashing over the up members picks one. Health and DNS change ``StatelessProxy/upstreams`` later.
    public var upstreams: UpstreamSet
    /// Retry-After of the 503 a request gets when no upstream is up (RFC 3261 §21.5.4).
    public var unavailableRetryAfterSeconds: UInt32 = 5
    /// Add Record-Route to dialog-creating requests so in-dialog requests come back through the edge.
    public var recordRoute: Bool
    /// Keys the Via branch hash, so branches are not predictable from outside.
    public var branchSecret: UInt64
    /// Max-Forwards to insert when a request has none (RFC 3261 §16.6 step 3).
    public var defaultMaxForwards: UInt8
    /// Signs flow tokens (RFC 5626 style) in Path, Record-Route and Via; at least 16 bytes.
    public var flowKey: [UInt8]
    /// Add a Path header (RFC 3327) with the client's flow token to REGISTERs going upstream.
    public var addPath: Bool
    /// The transport toward the upstreams.
    public var upstreamTransport: TransportKind
    /// The port TLS clients reach us at (for Record-Route toward them); nil when TLS is off.
    public var advertisedTLSPort: UInt16?
    /// The ports WebSocket clients reach us at, plain and secure (for Record-Route toward them); nil when off.
    public var advertisedWSPort: UInt16?
    public var advertisedWSSPort: UInt16?
    /// Proxy-Require option tags passed on for the core to honour (RFC 3261 §16.3 step 5); any other tag is
    /// refused with 420. Compared without case.
    public var proxyRequirePassthrough: [String] = []
    /// This worker's number, written into the flow tokens it makes.
    public var worker: UInt8
    /// The port of this worker's upstream-facing socket: Path and the upstream-facing Record-Route point here, so
    /// requests from the core for a flow come back to the worker that owns it. 0: the advertised port.
    public var internalPort: UInt16
    /// The host the core reaches us at, when it is not the public `advertised` one (an edge with a public and a
    /// private interface). Written into Path, the core-facing Record-Route and our Via toward a TCP/TLS core.
    /// Port ignored. Nil: `advertised`.
    public var internalHost: EndpointAddress?

    public init(advertised: EndpointAddress, upstreams: [EndpointAddress], recordRoute: Bool = true,
                branchSecret: UInt64 = 0x5EED_CAFE_F00D_BEEF, defaultMaxForwards: UInt8 = 70,
                flowKey: [UInt8], addPath: Bool = true,
                upstreamTransport: TransportKind = .udp, advertisedTLSPort: UInt16? = nil, worker: UInt8 = 0,
                internalPort: UInt16 = 0, internalHost: EndpointAddress? = nil) {
        self.advertised = advertised
        self.upstreams = UpstreamSet(addresses: upstreams)
        self.recordRoute = recordRoute
        self.branchSecret = branchSecret
        self.defaultMaxForwards = defaultMaxForwards
        self.flowKey = flowKey
        self.addPath = addPath
        self.upstreamTransport = upstreamTransport
        self.advertisedTLSPort = advertisedTLSPort
        self.worker = worker
        self.internalPort = internalPort
        self.internalHost = internalHost
    }
}

/// The stateless proxy of RFC 3261 §16.11: forwards requests with our Via on top (deterministic branch, so
/// retransmissions, ACK and CANCEL map to the same branch), fills in received/rport (RFC 3581), decrements
/// Max-Forwards (483 at zero), records and pops our Route (loose routing), and routes responses by popping our Via.
///
/// In front of a registrar it keeps client flows reachable without state (RFC 3327, RFC 5626): REGISTERs get a
/// Path, dialog-creating requests a Record-Route pair (one entry per side), both carrying a signed flow token; a
/// request from the core that comes back through them is sent down the flow the token names.
///
/// One per worker. The message is never rewritten: edits are recorded and spliced into ``output``.
public final class StatelessProxy {
    public let configuration: ProxyConfiguration
    /// The upstreams with their up/down state; the worker replaces it when health or DNS changes it.
    public var upstreams: UpstreamSet {
        didSet { noteUpstreamAddresses() }
    }
    /// The members' addresses alone: ``isUpstream(_:)`` runs several times per message and scans these...
    private var upstreamAddresses: [EndpointAddress] = []
    /// ...or, with the common single core, compares against this alone: no read of the array, whose buffer such a
    /// read of a class's property retains and releases.
    private var singleUpstreamAddress: EndpointAddress?
    /// Upstream-facing ports a predecessor process used (a zero-downtime restart handed its sockets to this
    /// worker): the Path and Record-Route entries it wrote name them, so they are ours too.
    public private(set) var formerInternalPorts: [UInt16] = []
    /// The bytes to send after ``process(_:from:)`` returns `.forward` or `.reply`. Reused; a sender copies them
    /// where they go (``ScratchBytes/withPacketBytes(_:)``): no array between the edits and the send slot.
    public private(set) var output = ScratchBytes(capacity: 70_000)
    private var editor = MessageEditor()
    private let tokens: FlowTokenCodec
    private let passthroughTags: [[UInt8]]
    /// The option tags of the last 420, reused.
    private var unsupportedTags: [ByteSpan] = []
    /// Our own addresses as text, formatted once: every forwarded request's Via and every dialog's Record-Route
    /// carries one, and a response's top Via is compared with the advertised host.
    private let advertisedHostText: [UInt8]
    private let publicHostPortTexts: [[UInt8]]  // by TransportKind.rawValue
    private let internalHostPortText: [UInt8]

    public init(configuration: ProxyConfiguration) {
        self.configuration = configuration
        passthroughTags = configuration.proxyRequirePassthrough.map { Array($0.lowercased().utf8) }
        upstreams = configuration.upstreams
        tokens = FlowTokenCodec(key: configuration.flowKey)
        func hostPort(_ host: EndpointAddress, _ port: UInt16) -> [UInt8] {
            var text: [UInt8] = []
            host.appendURIHostPort(to: &text, port: port)
            return text
        }
        var host: [UInt8] = []
        configuration.advertised.appendURIHost(to: &host)
        advertisedHostText = host
        publicHostPortTexts = TransportKind.allCases.map { transport in
            hostPort(configuration.advertised, Self.publicPort(for: transport, in: configuration))
        }
        internalHostPortText = hostPort(configuration.internalHost ?? configuration.advertised,
                                        Self.internalPort(in: configuration))
        noteUpstreamAddresses()
    }

    /// True when `address` is one of the upstreams (exact address and port, draining ones included).
    public func isUpstream(_ address: EndpointAddress) -> Bool {
        if let singleUpstreamAddress { return address == singleUpstreamAddress }
        return upstreamAddresses.contains(address)
    }

    private func noteUpstreamAddresses() {
        upstreamAddresses = upstreams.members.map(\.address)
        singleUpstreamAddress = upstreamAddresses.count == 1 ? upstreamAddresses[0] : nil
    }

    /// The side a message came from: the upstream set, or the public.
    public func side(of source: EndpointAddress) -> Side {
        isUpstream(source) ? .upstream : .client
    }

    /// A UDP message from `source`.
    public func process(_ message: SIPMessage, source: EndpointAddress) -> ForwardDecision {
        process(message, from: .udp(source))
    }

    public func process(_ message: SIPMessage, from source: Flow) -> ForwardDecision {
        process(message, from: source, attempt: ForwardAttempt())
    }

    /// `attempt`: which try of a client request this is, for a transaction failing over (serial forking, RFC 3261
    /// §16.7): the upstreams it already tried are skipped, and every try after the first gets a branch of its
    /// own (a new client transaction toward the core). Responses ignore it.
    /// `preflighted`: the caller already ran ``preflight(_:from:)`` on this request and it passed.
    public func process(_ message: SIPMessage, from source: Flow, attempt: ForwardAttempt,
                        preflighted: Bool = false) -> ForwardDecision {
        editor.reset()
        if message.isRequest {
            if !preflighted, let refusal = preflight(message, from: source) { return refusal }
            return processRequest(message, source: source, attempt: attempt)
        }
        return processResponse(message, source: source)
    }

    // MARK: Requests

    /// RFC 3261 §16.3 request validation, steps 2 to 5 in the RFC's order (step 1, reasonable syntax, is the
    /// parser's; step 6, Proxy-Authorization, is the core's): the Request-URI scheme (416), Max-Forwards (483),
    /// loops (482), Proxy-Require (420 with Unsupported). The worker runs it before its edge policy, so a request
    /// with Max-Forwards 0 gets 483 whatever else it carries. Nil: the request may go on. Replies are built in
    /// ``output`` and go back to the source (RFC 3581 symmetric response); an ACK is never answered, only dropped.
    public func preflight(_ message: SIPMessage, from source: Flow) -> ForwardDecision? {
        guard let requestLine = message.requestLine else { return nil }
        let isAck = message.method.known == .ack
        let side = side(of: source.address)
        // Step 2. From the public side everything goes to the core, which routes sip, sips and tel (RFC 3966): any
        // other scheme (im:, pres:, http:...) is refused here rather than handed to a core that cannot use it. From
        // the core, the edge itself routes on the URI when no flow token names the client (checked there: sip and
        // sips only).
        if side == .client, requestLine.uri.scheme == .other {
            return refuse(message, isAck: isAck, status: 416, reason: "Unsupported URI Scheme", to: source)
        }
        // Step 3.
        if let maxForwards = message.maxForwards, maxForwards == 0 {
            return refuse(message, isAck: isAck, status: 483, reason: "Too Many Hops", to: source)
        }
        // Step 4, simplified for an edge: a request may pass us once on its way in and once more when the core
        // sends it back out (a spiral), so it carries at most one Via of ours, and none at all from the public side.
        if ownViaCount(in: message) > (side == .upstream ? 1 : 0) {
            return refuse(message, isAck: isAck, status: 482, reason: "Loop Detected", to: source)
        }
        // Step 5: the edge implements no extension itself; the configured ones pass for the core. `Require` is the
        // UAS's business, never the proxy's.
        if message.headerSet.contains(.proxyRequire) {
            unsupportedTags.removeAll(keepingCapacity: true)
            let bytes = message.bytes
            let wellFormed = message.forEachOptionTag(of: .proxyRequire) { tag in
                if !passthroughTags.contains(where: { equalsLowercased(bytes, tag, $0) }) {
                    unsupportedTags.append(tag)
                }
            }
            if !wellFormed {
                return refuse(message, isAck: isAck, status: 400, reason: "Bad Request",
                              detail: "malformed Proxy-Require", to: source)
            }
            if !unsupportedTags.isEmpty {
                return refuse(message, isAck: isAck, status: 420, reason: "Bad Extension",
                              unsupported: unsupportedTags, to: source)
            }
        }
        return nil
    }

    /// A local reply to `source`, or for an ACK (never answered) a drop for `ackDrop`.
    private func refuse(_ message: SIPMessage, isAck: Bool, status: UInt16, reason: StaticString,
                        detail: String? = nil, unsupported: [ByteSpan] = [],
                        ackDrop: DropReason = .unanswerableAck, to source: Flow) -> ForwardDecision {
        if isAck { return .drop(ackDrop) }
        buildReply(to: message, status: status, reason: reason, detail: detail, unsupported: unsupported)
        return .reply(status: status, to: source)
    }

    /// Routing and edits, once ``preflight(_:from:)`` has passed.
    private func processRequest(_ message: SIPMessage, source: Flow, attempt: ForwardAttempt) -> ForwardDecision {
        let bytes = message.bytes
        let isAck = message.method.known == .ack
        let side = side(of: source.address)
        let firstHeader = message.header(at: 0).name.start

        // A client may not hand the core a Path through us: only we mint those (it would bind someone's
        // registration to a flow of our choosing, or of theirs).
        let isRegister = message.method.known == .register
        if side == .client, isRegister, claimsOurPath(message) {
            buildReply(to: message, status: 403, reason: "Forbidden", detail: "Path through this edge")
            return .reply(status: 403, to: source)
        }

        // Our own Route entries on top (we Record-Routed this dialog, or a registrar used our Path) are consumed
        // here (RFC 3261 §16.4); the flow token in them names the client flow.
        let routes = popOwnRoutes(message)

        let destination: Flow
        switch side {
        case .client:
            // Outbound-proxy mode: everything from the public side goes to the core, whatever its Route says, so
            // a token in a client's Route is never acted upon. Only an in-dialog request whose next Route names
            // an upstream that is up (draining or not) goes there: its dialog lives on that core.
            guard let upstream = attempt.upstream ?? dialogUpstream(message, next: routes.next)
                ?? pickUpstream(for: message, excluding: attempt.excluded) else {
                if isAck { return .drop(.noUpstream) }
                buildReply(to: message, status: 503, reason: "Service Unavailable", detail: "no upstream is up",
                           retryAfter: configuration.unavailableRetryAfterSeconds)
                return .reply(status: 503, to: source)
            }
            destination = Flow(transport: configuration.upstreamTransport, address: upstream)
        case .upstream:
            if let token = routes.token {
                guard let flow = tokens.decode(bytes, token) else {
                    return refuse(message, isAck: isAck, status: 403, reason: "Forbidden",
                                  detail: "Invalid flow token", to: source)
                }
                destination = flow
            } else {
                let target = routes.next?.uri ?? message.requestLine!.uri
                if target.scheme != .sip, target.scheme != .sips {
                    // §16.3 step 2: the edge would have to route on a tel: or other URI itself.
                    return refuse(message, isAck: isAck, status: 416, reason: "Unsupported URI Scheme",
                                  ackDrop: .unresolvableDestination, to: source)
                }
                guard let address = numericAddress(of: target, in: bytes) else {
                    return refuse(message, isAck: isAck, status: 502, reason: "Bad Gateway",
                                  ackDrop: .unresolvableDestination, to: source)
                }
                destination = .udp(address)
            }
        }
        let clientFlow = side == .client ? source : destination

        // RFC 3581: tell the next hop where the request really came from.
        let topVia = message.topVia
        if side == .client {
            if case .requested(let nameEnd) = topVia.rport {
                editor.insert(at: nameEnd) { out in
                    out.append(UInt8(ascii: "="))
                    appendDecimal(UInt64(source.address.port), to: &out)
                }
            }
            if !viaHost(topVia, matches: source.address, in: bytes) || topVia.rport != .absent {
                if topVia.received == nil {
                    editor.insert(at: topVia.span.end) { out in
                        out.append(ascii: ";received=")
                        source.address.appendHost(to: &out)
                    }
                }
            }
        }

        let branch = Self.attemptBranch(base: branchHash(for: message), attempt: attempt.number)
        editor.insert(at: firstHeader) { out in
            out.append(ascii: "Via: SIP/2.0/")
            out.append(ascii: destination.transport.viaName)
            out.append(UInt8(ascii: " "))
            if side == .client, destination.transport.isStream {
                // Toward the core over this worker's pooled connection: sent-by is the worker's own address and
                // ";alias" (RFC 5923) lets the core send requests for our Path and Record-Route (which name that
                // address) back over the same connection instead of dialling us.
                self.appendInternalHostPort(to: &out)
                out.append(ascii: ";alias")
            } else {
                self.appendPublicHostPort(for: destination.transport, to: &out)
            }
            // rport: responses come back to the sending socket, which is this worker's own (RFC 3581).
            out.append(ascii: ";rport;branch=z9hG4bK")
            appendHex(branch, to: &out)
            // A response for a stream client must go down its connection: the token finds it again.
            if side == .client, source.transport.isStream {
                out.append(ascii: ";ft=")
                self.tokens.append(source, to: &out)
            }
            out.append(ascii: "\r\n")
        }
        if configuration.recordRoute, MethodSet.dialogCreating.contains(message.method.known),
            message.toTag == nil {
            insertRecordRoutes(at: firstHeader, clientFlow: clientFlow, fromClient: side == .client)
        }
        if side == .client, isRegister, configuration.addPath {
            editor.insert(at: firstHeader) { out in
                out.append(ascii: "Path: ")
                self.appendInternalURI(token: source, to: &out)
                out.append(ascii: "\r\n")
            }
        }
        if let index = message.firstIndex(of: .maxForwards), let value = message.maxForwards {
            editor.replace(message.header(at: index).value) { out in appendDecimal(UInt64(value - 1), to: &out) }
        } else {
            editor.insert(at: firstHeader) { out in
                out.append(ascii: "Max-Forwards: ")
                appendDecimal(UInt64(self.configuration.defaultMaxForwards - 1), to: &out)
                out.append(ascii: "\r\n")
            }
        }
        insertContentLengthIfFramingNeedsIt(message, toward: destination)
        editor.apply(to: bytes, end: message.messageEnd, into: &output)
        return .forward(to: destination)
    }

    /// RFC 3261 §18.3: over TCP/TLS, Content-Length is what frames a message; a datagram or a WebSocket frame
    /// carried its length without one (§20.14 lets those leave it out). Added when the message goes onto a stream,
    /// as the last header (before the blank line: no other edit reaches past it).
    private func insertContentLengthIfFramingNeedsIt(_ message: SIPMessage, toward destination: Flow) {
        guard destination.transport.isStream, !destination.transport.isWebSocket,
              message.firstIndex(of: .contentLength) == nil, message.body.start >= 2 else { return }
        let length = message.messageEnd - message.body.start
        editor.insert(at: message.body.start - 2) { out in
            out.append(ascii: "Content-Length: ")
            appendDecimal(UInt64(length), to: &out)
            out.append(ascii: "\r\n")
        }
    }

    /// The port the core reaches this worker at (the advertised one when no worker port is set).
    private var internalPort: UInt16 { Self.internalPort(in: configuration) }

    private static func internalPort(in configuration: ProxyConfiguration) -> UInt16 {
        configuration.internalPort == 0 ? configuration.advertised.port : configuration.internalPort
    }

    private func appendInternalHostPort<Output: ByteOutput & ~Copyable>(to out: inout Output) {
        out.append(bytes: internalHostPortText)
    }

    /// The Call-ID prefix of health probes: their responses are the edge's own, not forwarded.
    public static let probeCallIDPrefix: StaticString = "sip-edge-probe-"

    /// Builds into ``output`` an OPTIONS health probe (RFC 3261 §11) to `upstream` over the upstream transport,
    /// from this worker's upstream-facing address, so the answer comes back to this worker. `callID` must start
    /// with ``probeCallIDPrefix``; Max-Forwards 0 keeps the core from relaying it (RFC 3261 §11.1: it answers itself).
    public func buildProbe(to upstream: EndpointAddress, callID: String, sequence: UInt32) {
        output.truncate(to: 0)
        output.append(ascii: "OPTIONS sip:")
        upstream.appendURIHostPort(to: &output)
        if let transport = configuration.upstreamTransport.uriParameter {
            output.append(ascii: ";transport=")
            output.append(ascii: transport)
        }
        output.append(ascii: " SIP/2.0\r\nVia: SIP/2.0/")
        output.append(ascii: configuration.upstreamTransport.viaName)
        output.append(UInt8(ascii: " "))
        appendInternalHostPort(to: &output)
        output.append(ascii: ";rport;branch=z9hG4bK")
        output.append(bytes: Array(callID.utf8.dropFirst(Self.probeCallIDPrefix.utf8CodeUnitCount)))
        output.append(ascii: "\r\nMax-Forwards: 0\r\nFrom: <sip:sip-edge@")
        appendInternalHostPort(to: &output)
        output.append(ascii: ">;tag=")
        appendHex(UInt64(sequence), to: &output)
        output.append(ascii: "\r\nTo: <sip:")
        upstream.appendURIHost(to: &output)
        output.append(ascii: ">\r\nCall-ID: ")
        output.append(bytes: Array(callID.utf8))
        output.append(ascii: "\r\nCSeq: ")
        appendDecimal(UInt64(sequence), to: &output)
        output.append(ascii: " OPTIONS\r\nUser-Agent: sip-edge health probe\r\nContent-Length: 0\r\n\r\n")
    }

    /// Record-Route for both sides (RFC 5658 double Record-Route): the entry the core will send to (our
    /// upstream-facing address, with the client's flow token) and the entry the client will send to (our public
    /// address on the client's transport). The entry facing the next hop goes on top. When both would name the
    /// same address and transport, one entry (with the token) serves both.
    private func insertRecordRoutes(at offset: Int, clientFlow: Flow, fromClient: Bool) {
        let single = internalPort == publicPort(for: clientFlow.transport)
            && configuration.upstreamTransport == clientFlow.transport
        let writeInternal: (inout ScratchBytes) -> Void = { out in
            out.append(ascii: "Record-Route: ")
            self.appendInternalURI(token: clientFlow, to: &out)
            out.append(ascii: "\r\n")
        }
        let writePublic: (inout ScratchBytes) -> Void = { out in
            out.append(ascii: "Record-Route: <sip:")
            self.appendPublicHostPort(for: clientFlow.transport, to: &out)
            if let transport = clientFlow.transport.uriParameter {
                out.append(ascii: ";transport=")
                out.append(ascii: transport)
            }
            out.append(ascii: ";lr>\r\n")
        }
        if single {
            editor.insert(at: offset, writeInternal)
        } else if fromClient {
            editor.insert(at: offset, writeInternal)
            editor.insert(at: offset, writePublic)
        } else {
            editor.insert(at: offset, writePublic)
            editor.insert(at: offset, writeInternal)
        }
    }

    /// `<sip:ADVERTISED:INTERNAL;transport=...;lr;ft=TOKEN>`: where the core reaches this worker for `token`'s flow.
    private func appendInternalURI(token flow: Flow, to out: inout ScratchBytes) {
        out.append(ascii: "<sip:")
        appendInternalHostPort(to: &out)
        if let transport = configuration.upstreamTransport.uriParameter {
            out.append(ascii: ";transport=")
            out.append(ascii: transport)
        }
        out.append(ascii: ";lr;ft=")
        tokens.append(flow, to: &out)
        out.append(UInt8(ascii: ">"))
    }

    /// What popping our own leading Route entries found: the flow token (from the first entry that has one) and the
    /// first Route left.
    private struct PoppedRoutes {
        var token: ByteSpan?
        var next: NameAddress?
    }

    /// Deletes up to two leading Route entries that name us (our Record-Route pair, or our Path), whether they share
    /// a line or not.
    private func popOwnRoutes(_ message: SIPMessage) -> PoppedRoutes {
        var result = PoppedRoutes()
        let bytes = message.bytes
        var popped = 0
        var lineIndex = message.firstIndex(of: .route)
        while let index = lineIndex {
            let line = message.header(at: index)
            var kept: ByteSpan?
            try? message.forEachElement(inLine: index) { element in
                let address = try? NameAddress.parse(bytes, element)
                if popped < 2, let address, isOurs(address.uri, in: bytes) {
                    if result.token == nil { result.token = address.uri.parameter("ft", in: bytes)?.value }
                    popped += 1
                    return true
                }
                result.next = address
                kept = element
                return false
            }
            if let kept {
                if kept.start > line.value.start { editor.delete(ByteSpan(from: line.value.start, to: kept.start)) }
                return result
            }
            if popped > 0 { deleteLine(line, in: message) }
            lineIndex = message.nextIndex(of: .route, after: index)
        }
        return result
    }

    /// The flow named by the flow token in the request's leading Route entries that name us (the same entries
    /// ``process(_:from:)`` would pop), when the token verifies; nil otherwise. Read only: nothing is edited.
    ///
    /// A client's in-dialog request carries the Record-Route we inserted for its dialog, token included, so a token
    /// naming the very flow the request arrived on shows the request comes from a client we already carry, not
    /// from whoever shares its address: the rate limiter lets such a request through its source's ban. Forging
    /// one takes the flow key (HMAC), and replaying one from another address or connection fails the comparison
    /// with the arrival flow.
    public func routeTokenFlow(of message: SIPMessage) -> Flow? {
        guard message.headerSet.contains(.route) else { return nil }
        let bytes = message.bytes
        var token: ByteSpan?
        var ours = 0
        var index = message.firstIndex(of: .route)
        while let current = index, token == nil, ours < 2 {
            var stop = false
            try? message.forEachElement(inLine: current) { element in
                guard ours < 2, let address = try? NameAddress.parse(bytes, element), isOurs(address.uri, in: bytes)
                else {
                    stop = true
                    return false
                }
                ours += 1
                token = address.uri.parameter("ft", in: bytes)?.value
                return token == nil
            }
            if stop { break }
            index = message.nextIndex(of: .route, after: current)
        }
        guard let token else { return nil }
        return tokens.decode(bytes, token)
    }

    /// True when a Path entry of the message names us.
    private func claimsOurPath(_ message: SIPMessage) -> Bool {
        guard message.headerSet.contains(.path) else { return false }
        let bytes = message.bytes
        var ours = false
        try? message.forEachElement(of: .path) { element throws(SIPParseError) in
            if let address = try? NameAddress.parse(bytes, element), isOurs(address.uri, in: bytes) { ours = true }
        }
        return ours
    }

    /// Call-ID rendezvous hashing over the up upstreams (``UpstreamSet``), so a CANCEL or ACK reaches the upstream
    /// its INVITE went to, and only a down upstream's calls move.
    private func pickUpstream(for message: SIPMessage, excluding excluded: UInt64) -> EndpointAddress? {
        // A single core leaves nothing to rank: no hash of the Call-ID.
        pickUpstream(routingHash: upstreams.count == 1 ? 0 : routingHash(for: message), excluding: excluded)
    }

    /// The hash the upstream choice ranks upstreams by: a transaction keeps it to choose again on failover.
    public func routingHash(for message: SIPMessage) -> UInt64 {
        mix(fnv1a(message.bytes, message.callID, seed: configuration.branchSecret))
    }

    /// The up upstream ranked first for `routingHash` among those not `excluded` (bit i: member i).
    public func pickUpstream(routingHash: UInt64, excluding excluded: UInt64) -> EndpointAddress? {
        if upstreams.count == 1 {
            return upstreams.isUp(at: 0) && excluded & 1 == 0 ? upstreams.members[0].address : nil
        }
        return upstreams.pick(hash: routingHash, excluding: excluded).map { upstreams.members[$0].address }
    }

    /// The branch of try `attempt` of a request whose first try had `base`: every failover try is a client
    /// transaction of its own (RFC 3261 §16.7 step 10 with serial forking).
    public static func attemptBranch(base: UInt64, attempt: Int) -> UInt64 {
        attempt == 0 ? base : mix(base ^ UInt64(attempt))
    }

    /// The upstream an in-dialog request's next Route names, when it is one of ours and up: the core that
    /// Record-Routed the dialog keeps it even if the Call-ID would hash elsewhere now (it is draining, or the set
    /// changed). Nil for anything else: then the Call-ID decides.
    private func dialogUpstream(_ message: SIPMessage, next: NameAddress?) -> EndpointAddress? {
        guard message.toTag != nil, let next, upstreams.count > 1,
            let address = numericAddress(of: next.uri, in: message.bytes),
            let index = upstreams.index(of: address), upstreams.isUp(at: index) else { return nil }
        return address
    }

    /// RFC 3261 §16.11: the branch of a stateless proxy must be the same for retransmissions. With an RFC 3261
    /// client branch, hashing it with the sent-by host suffices and makes CANCEL and non-2xx ACK, which reuse the
    /// INVITE's branch, land on the INVITE's branch too. Older (RFC 2543) clients: hash the dialog fields.
    private func branchHash(for message: SIPMessage) -> UInt64 {
        let bytes = message.bytes
        var hash = configuration.branchSecret
        if message.topVia.hasRFC3261Branch(in: bytes), let branch = message.topVia.branch {
            hash = fnv1a(bytes, branch, seed: hash)
            hash = fnv1a(bytes, message.topVia.host, seed: hash)
        } else {
            hash = fnv1a(bytes, message.callID, seed: hash)
            if let tag = message.fromTag { hash = fnv1a(bytes, tag, seed: hash) }
            if let tag = message.toTag { hash = fnv1a(bytes, tag, seed: hash) }
            hash = fnv1a(bytes, message.requestLine!.uri.span, seed: hash)
            hash = hash ^ UInt64(message.cseq.number)
        }
        if message.method.known == .ack && message.toTag != nil {
            hash ^= 0xA5A5  // a 2xx ACK is its own transaction (RFC 3261 §17.1.1.3)
        }
        return mix(hash)
    }

    // MARK: Responses

    /// A response from a client can only answer a request the core sent it, so it goes to the core: flow tokens in
    /// it are not honoured and a next hop that is not an upstream is refused (no reflection off the edge).
    private func processResponse(_ message: SIPMessage, source: Flow) -> ForwardDecision {
        let fromClient = side(of: source.address) == .client
        let bytes = message.bytes
        guard isOurVia(message.topVia, in: bytes) else {
            return .drop(.responseNotForUs)
        }
        // The next hop is the second Via: read it, then remove ours.
        guard let nextHop = try? message.secondViaHop() else {
            return .drop(.responseWithoutNextHop)
        }
        let destination: Flow
        if !fromClient, let token = message.topVia.flowToken {
            // The request came over a stream: the response goes down that connection (RFC 3261 §18.2.2).
            guard let flow = tokens.decode(bytes, token) else { return .drop(.responseNotForUs) }
            destination = flow
        } else {
            guard let address = responseDestination(nextHop, in: bytes) else { return .drop(.unresolvableDestination) }
            if fromClient {
                guard isUpstream(address) else { return .drop(.responseNotForUpstream) }
                destination = Flow(transport: configuration.upstreamTransport, address: address)
            } else {
                destination = .udp(address)
            }
        }
        let viaIndex = message.topViaHeaderIndex
        deleteFirstElement(of: viaIndex, line: message.header(at: viaIndex), element: message.topVia.span,
                           in: message)
        insertContentLengthIfFramingNeedsIt(message, toward: destination)
        editor.apply(to: bytes, end: message.messageEnd, into: &output)
        return .forward(to: destination)
    }

    /// RFC 3261 §18.2.2 with RFC 3581: received (or the sent-by host) and rport (or the sent-by port, or 5060).
    private func responseDestination(_ hop: ViaHop, in bytes: PacketBytes) -> EndpointAddress? {
        let port: UInt16
        if case .value(let rport) = hop.rport { port = rport } else { port = hop.port ?? 5060 }
        return EndpointAddress.parse(bytes, hop.received ?? hop.host, port: port)
    }

    // MARK: Local replies

    /// Builds a stateless response to `message` in ``output``: its Vias, From, To (with a tag added), Call-ID and
    /// CSeq copied, no body. The reason is fixed text, never message bytes.
    /// `addTag` false: the To header as the request had it (a 100 Trying, RFC 3261 §8.2.6.2). `unsupported`: option
    /// tags (tokens, checked by the caller) for an `Unsupported` header (a 420).
    public func buildReply(to message: SIPMessage, status: UInt16, reason: StaticString, detail: String? = nil,
                           retryAfter: UInt32? = nil, addTag: Bool = true, unsupported: [ByteSpan] = []) {
        _ = LocalReply.build(into: &output, bytes: message.bytes, headers: message.headerTable, status: status,
                             reason: reason, detail: detail, retryAfter: retryAfter,
                             tag: addTag ? branchHash(for: message) : nil, unsupported: unsupported)
    }

    /// Builds a stateless response to a request that did not parse, from its scanned header lines. Returns false
    /// (and builds nothing) when the lines needed to address a response are missing or unusable: then the only
    /// safe answer is none.
    public func buildReply(toUnparsed bytes: PacketBytes, headers: HeaderTable, status: UInt16,
                           reason: StaticString, detail: String?) -> Bool {
        LocalReply.build(into: &output, bytes: bytes, headers: headers, status: status, reason: reason,
                         detail: detail, retryAfter: nil,
                         tag: fnv1a(bytes, ByteSpan(offset: 0, length: min(bytes.count, 256)), seed: configuration.branchSecret))
    }

    // MARK: Helpers

    /// How many Via hops carry our own sent-by.
    private func ownViaCount(in message: SIPMessage) -> Int {
        let bytes = message.bytes
        var count = isOurVia(message.topVia, in: bytes) ? 1 : 0
        guard message.viaHopCount > 1 else { return count }
        var index = 0
        try? message.forEachElement(of: .via) { element throws(SIPParseError) in
            index += 1
            guard index > 1, let hop = try? ViaHop.parse(bytes, element) else { return }
            if isOurVia(hop, in: bytes) { count += 1 }
        }
        return count
    }

    /// True when `hop` carries a sent-by we write: our public host with the port we are reached at over the hop's
    /// transport (UDP and TCP share the advertised port; TLS, WS and WSS have their own), or the upstream-facing
    /// one over the upstream transport (connections to the core, health probes). The transport counts: a TCP client
    /// on this host may have, as its own port, the number of a UDP socket of ours, and is not us.
    private func isOurVia(_ hop: ViaHop, in bytes: PacketBytes) -> Bool {
        guard let transport = TransportKind(viaToken: hop.transport, in: bytes) else { return false }
        let port = hop.port ?? 5060
        let isInternalPort = transport == configuration.upstreamTransport && isInternal(port: port)
        return isOurs(host: hop.host, public: port == publicPort(for: transport), internal: isInternalPort, in: bytes)
    }

    /// The port clients reach us at over `transport`: TLS, WS and WSS have their own, UDP and TCP share the
    /// advertised one.
    private func publicPort(for transport: TransportKind) -> UInt16 {
        Self.publicPort(for: transport, in: configuration)
    }

    private static func publicPort(for transport: TransportKind, in configuration: ProxyConfiguration) -> UInt16 {
        let own: UInt16? = switch transport {
        case .udp, .tcp: nil
        case .tls: configuration.advertisedTLSPort
        case .ws: configuration.advertisedWSPort
        case .wss: configuration.advertisedWSSPort
        }
        return own ?? configuration.advertised.port
    }

    private func appendPublicHostPort(for transport: TransportKind, to out: inout ScratchBytes) {
        out.append(bytes: publicHostPortTexts[Int(transport.rawValue)])
    }

    /// Recognises `port` as ours on the upstream-facing side from now on (see ``formerInternalPorts``).
    public func acceptFormerInternalPort(_ port: UInt16) {
        if !formerInternalPorts.contains(port) { formerInternalPorts.append(port) }
    }

    private func isOurs(_ uri: SIPURI, in bytes: PacketBytes) -> Bool {
        (uri.scheme == .sip || uri.scheme == .sips) && isOurs(host: uri.host, port: uri.port, in: bytes)
    }

    /// A URI's host and port name us: our advertised host on any port we are reached at (public, TLS, WS, or this
    /// worker's upstream-facing one), or the internal host on the upstream-facing port. (Vias: ``isOurVia(_:in:)``.)
    private func isOurs(host: ByteSpan, port: UInt16?, in bytes: PacketBytes) -> Bool {
        let port = port ?? 5060
        let isPublicPort = port == configuration.advertised.port || port == configuration.advertisedTLSPort
            || port == configuration.advertisedWSPort || port == configuration.advertisedWSSPort
        return isOurs(host: host, public: isPublicPort, internal: isInternal(port: port), in: bytes)
    }

    /// This worker's upstream-facing port, or one a reload retired.
    private func isInternal(port: UInt16) -> Bool {
        port == internalPort || (!formerInternalPorts.isEmpty && formerInternalPorts.contains(port))
    }

    /// `host` names us, given whether its port is one of our public ports or the upstream-facing one.
    private func isOurs(host: ByteSpan, public isPublicPort: Bool, internal isInternalPort: Bool,
                        in bytes: PacketBytes) -> Bool {
        guard isPublicPort || isInternalPort else { return false }
        // Our own Vias and Routes carry the advertised host exactly as we write it: no parse needed for those.
        if bytes.equals(host, advertisedHostText) { return true }
        guard let address = EndpointAddress.parse(bytes, host, port: configuration.advertised.port)
        else { return false }
        if address == configuration.advertised { return true }
        // The internal host names us only on the internal port.
        guard isInternalPort, let internalHost = configuration.internalHost else { return false }
        return address.family == internalHost.family && address.high == internalHost.high
            && address.low == internalHost.low
    }

    private func numericAddress(of uri: SIPURI, in bytes: PacketBytes) -> EndpointAddress? {
        guard uri.scheme == .sip || uri.scheme == .sips else { return nil }
        if let maddr = uri.parameter("maddr", in: bytes)?.value {
            return EndpointAddress.parse(bytes, maddr, port: uri.port ?? 5060)
        }
        return EndpointAddress.parse(bytes, uri.host, port: uri.port ?? 5060)
    }

    private func viaHost(_ hop: ViaHop, matches source: EndpointAddress, in bytes: PacketBytes) -> Bool {
        guard let address = EndpointAddress.parse(bytes, hop.host, port: source.port) else { return false }
        return address == source
    }

    /// Removes a whole header line through its CRLF.
    private func deleteLine(_ line: HeaderLine, in message: SIPMessage) {
        let bytes = message.bytes
        var end = line.value.end
        while end + 1 < bytes.count, !(bytes[end] == 0x0D && bytes[end + 1] == 0x0A) { end += 1 }
        editor.delete(ByteSpan(from: line.name.start, to: end + 2))
    }

    /// Removes one comma-separated element of a header line, or the whole line when it is the only one.
    private func deleteFirstElement(of index: Int, line: HeaderLine, element: ByteSpan, in message: SIPMessage) {
        let bytes = message.bytes
        if element.start <= line.value.start && element.end >= line.value.end {
            deleteLine(line, in: message)
        } else {
            // First of several: delete through the comma and the whitespace after it.
            var end = element.end
            while end < line.value.end, bytes[end] != UInt8(ascii: ",") { end += 1 }
            end += 1
            while end < line.value.end, ASCII.isLinearWhitespace(bytes[end]) { end += 1 }
            editor.delete(ByteSpan(from: element.start, to: end))
        }
    }
}

/// True when `span` equals `lowercased` (lower-case ASCII), compared without case.
func equalsLowercased(_ bytes: PacketBytes, _ span: ByteSpan, _ lowercased: [UInt8]) -> Bool {
    guard span.count == lowercased.count else { return false }
    for index in 0..<span.count where ASCII.lowercased(bytes[span.start + index]) != lowercased[index] { return false }
    return true
}

/// FNV-1a over a span, continuing from `seed`.
func fnv1a(_ bytes: PacketBytes, _ span: ByteSpan, seed: UInt64) -> UInt64 {
    var hash = seed ^ 0xCBF2_9CE4_8422_2325
    for i in span.start..<span.end {
        hash ^= UInt64(bytes[i])
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}

/// A final avalanche (splitmix64), so nearby inputs give unrelated outputs.
func mix(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

