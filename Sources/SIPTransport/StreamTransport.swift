import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSettings
import SIPUring
import SIPMetrics

#if canImport(Glibc)
import Glibc
#endif

/// SIP over TCP, TLS, WebSocket and secure WebSocket on the worker's ring (RFC 3261 §18.3, RFC 7118): accept,
/// receive into provided buffers, frame (by Content-Length, or by WebSocket frame), hand each message to the
/// pipeline like a datagram, and send in order with one send in flight per connection; plus the pooled
/// connections toward TCP/TLS upstreams. Every buffer is bounded: a peer that sends too much is refused, one that
/// reads too slowly is cut.
final class StreamTransport {
    static let tcpAcceptTag: UInt32 = 2
    static let tlsAcceptTag: UInt32 = 3
    static let wsAcceptTag: UInt32 = 4
    static let wssAcceptTag: UInt32 = 5

    /// The transport of the connections a listener (by its accept tag) takes.
    static func transport(ofAcceptTag tag: UInt32) -> TransportKind {
        switch tag {
        case tlsAcceptTag: .tls
        case wsAcceptTag: .ws
        case wssAcceptTag: .wss
        default: .tcp
        }
    }

    let ring: URing
    let pipeline: MessagePipeline
    private let worker: UInt8
    private let limits: StreamLimits
    let scanLimits: ScanLimits
    let webSocket: WebSocketSettings
    private let upstreamTransport: TransportKind
    private let upstreamTLS: TLSContext?
    private let upstreamServerName: String?
    /// The client listeners by accept tag (TCP, TLS, WS, WSS: those configured).
    private var listeners: [UInt32: StreamListener] = [:]
    private(set) var table: StreamTable
    private(set) var pool: UpstreamPool
    /// Told when a pooled connection fails (refused, lost): a passive health failure of its upstream.
    var onPoolFailure: ((EndpointAddress) -> Void)?
    /// The certificate for new TLS handshakes; a reload swaps it, established sessions keep theirs.
    var tlsContext: TLSContext?
    /// Client connections open (the pool's are counted apart: clients cannot crowd the core out of the table).
    private(set) var clientConnections = 0
    /// Listeners whose accept failed (EMFILE...), re-armed after a pause rather than in a tight loop.
    private var pausedAccepts: Set<UInt32> = []
    private var acceptsResumeAt: UInt64 = 0
    /// Set by ``stopAccepting()``: an accept that ends is not armed again.
    private var acceptsStopped = false
    private var lastIdleSweep: UInt64 = 0
    /// Scratch for TLS records on their way out.
    private var ciphertext: [UInt8] = []
    /// How often the idle sweep runs: once a second, more often when WebSocket deadlines are short (a quarter of
    /// the ping interval, a fifth of the handshake timeout), so each is kept to within that.
    private let sweepInterval: UInt64
    /// Scratch for a WebSocket frame on its way out (header and message).
    var outgoingFrame: [UInt8] = []
    /// Scratch for a message on its way out, copied from the borrowed bytes it was built in.
    private var outgoingMessage: [UInt8] = []

    init(ring: URing, pipeline: MessagePipeline, worker: Int, configuration: WorkerConfiguration,
         tlsContext: TLSContext?, handover: WorkerHandover? = nil) throws {
        self.ring = ring
        self.pipeline = pipeline
        self.worker = UInt8(truncatingIfNeeded: worker)
        limits = configuration.streams
        scanLimits = configuration.parseLimits.scan
        webSocket = configuration.webSocket
        sweepInterval = webSocket.isEnabled
            ? max(50, min(1_000, webSocket.pingIntervalMilliseconds / 4, webSocket.handshakeTimeoutMilliseconds / 5))
            : 1_000
        upstreamTransport = configuration.proxy.upstreamTransport
        upstreamTLS = configuration.upstreamTLS
        upstreamServerName = configuration.upstreamPool.tlsServerName
        self.tlsContext = tlsContext
        pool = UpstreamPool(upstreams: pipeline.proxy.upstreams.members.map(\.address), transport: upstreamTransport,
                            settings: configuration.upstreamPool)
        table = StreamTable(capacity: min(configuration.streams.maxConnections + pool.slots.count, 65_535))
        var bindings: [(UInt32, EndpointAddress)] = []
        if configuration.streams.tcpEnabled { bindings.append((Self.tcpAcceptTag, configuration.listen)) }
        if let address = configuration.tlsListen { bindings.append((Self.tlsAcceptTag, address)) }
        if let plain = configuration.webSocket.plain { bindings.append((Self.wsAcceptTag, plain.address)) }
        if let secure = configuration.webSocket.secure { bindings.append((Self.wssAcceptTag, secure.address)) }
        for (tag, address) in bindings {
            let role = SocketRole.listener(acceptTag: tag)
            let listener = try handover?.takeInherited(worker: worker, role: role)
                .map { try StreamListener(adopting: $0, expecting: address) } ?? StreamListener(binding: address)
            try ring.armAccept(on: listener, tag: tag)
            listeners[tag] = listener
            handover?.register(worker: worker, role: role, descriptor: listener.descriptor)
        }
    }

    /// Stops accepting (a successor holds the listeners now): connections still queued are the successor's.
    /// Connections already open are served on until they close.
    func stopAccepting() {
        acceptsStopped = true
        pausedAccepts.removeAll()
        for tag in listeners.keys { try? ring.cancelAccept(tag: tag) }
    }

    /// Steers the listeners' SO_REUSEPORT groups by source address (see `EdgeWorker.attachSourceSteering`).
    func attachSourceSteering(groupSize: Int) throws {
        for listener in listeners.values { try listener.attachSourceSteering(groupSize: groupSize) }
    }

    /// Periodic work between batches: idle sweep, pool dials, paused accepts.
    func maintain(now: UInt64) {
        sweepIdle(now: now)
        dialDueSlots(now: now)
        resumePausedAccepts(now: now)
    }

    // MARK: Accept

    func accept<Sink: FlowSink>(_ event: URingEvent, sink: Sink) {
        guard event.result >= 0 else { return }
        let descriptor = event.result
        let transport = Self.transport(ofAcceptTag: event.socketTag)
        guard let peer = event.source else {
            closeStream(descriptor)
            return
        }
        let now = MonotonicClock.milliseconds()
        guard pipeline.admitsConnection(from: peer, now: now) else {
            pipeline.counters.count(.refusedRateLimited)
            closeStream(descriptor)
            return
        }
        guard clientConnections < limits.maxConnections, let key = table.reserve() else {
            pipeline.counters.count(.refusedFull)
            closeStream(descriptor)
            return
        }
        var session: TLSSession?
        if transport.isEncrypted {
            guard let context = tlsContext, let made = try? TLSSession(context: context, serverName: nil) else {
                table.release(unused: key)
                pipeline.counters.count(.tlsHandshakeFailed)
                closeStream(descriptor)
                return
            }
            session = made
        }
        let connection = StreamConnection(
            key: key, descriptor: descriptor, transport: transport, peer: peer, now: now, tls: session,
            webSocket: transport.isWebSocket
                ? WebSocketSession(acceptedAt: now, maxMessage: Int(scanLimits.maxMessageSize)) : nil)
        table.insert(connection)
        clientConnections += 1
        pipeline.counters.openConnections[Int(connection.transport.rawValue)] += 1
        pipeline.counters.count(.accepted)
        setNoDelay(descriptor)
        armReceive(connection)
    }

    /// A multishot accept ended. After an error (EMFILE...) re-arming at once would fail the same way in a tight
    /// loop: it is paused and tried again on a later loop turn, never lost.
    func acceptEnded(_ event: URingEvent) {
        if event.result < 0 {
            pause(accept: event.socketTag)
        } else {
            armAccept(tag: event.socketTag)
        }
    }

    private func armAccept(tag: UInt32) {
        guard !acceptsStopped, let listener = listeners[tag] else { return }
        do {
            try ring.armAccept(on: listener, tag: tag)
        } catch {
            pause(accept: tag)
        }
    }

    private func pause(accept tag: UInt32) {
        pausedAccepts.insert(tag)
        acceptsResumeAt = MonotonicClock.milliseconds() + 100
    }

    private func resumePausedAccepts(now: UInt64) {
        guard !pausedAccepts.isEmpty, now >= acceptsResumeAt else { return }
        let tags = pausedAccepts
        pausedAccepts.removeAll()
        for tag in tags { armAccept(tag: tag) }
    }

    // MARK: Receive

    func receive<Sink: FlowSink>(_ event: URingEvent, sink: Sink) {
        guard let connection = table.connection(UInt32(truncatingIfNeeded: event.streamKey)) else { return }
        if event.result == -ENOBUFS || event.result == -EBUSY {
            // The provided buffers (shared with UDP) ran out for a moment: the bytes wait in the socket, and the
            // receive is armed again (needsRearm). Not the peer's doing: the connection stays.
            pipeline.counters.receiveBufferExhaustion += 1
            return
        }
        guard event.result > 0, let payload = event.payload else {
            close(connection, event: .peerClosed)
            return
        }
        connection.lastActivity = MonotonicClock.milliseconds()
        // Closing (a final 400 on its way out): the rest of the stream is not read.
        guard connection.isReading else { return }
        let receivedBefore = pipeline.counters.received
        defer { trackPartialMessage(connection, progressed: pipeline.counters.received != receivedBefore) }
        guard let tls = connection.tls else {
            connection.input.append(payload)
            frameMessages(connection, sink: sink)
            return
        }
        guard tls.feed(payload) else {
            close(connection, event: .tlsError)
            return
        }
        // Decrypt and frame in turns, so one segment carrying many records never needs more than two messages'
        // worth of plaintext buffered, and nothing decrypted is left waiting for a segment that may not come.
        var reading = PlaintextRead.limitReached
        while reading == .limitReached, connection.isReading {
            reading = readPlaintext(connection, tls)
            flushCiphertext(connection)
            if connection.isConnecting, tls.isHandshakeComplete { upstreamReady(connection) }
            if !connection.isClosed { frameMessages(connection, sink: sink) }
        }
        if reading == .peerClosed, connection.isReading {
            // Everything sent before close_notify has been handled; what we still owe it is flushed first.
            if connection.beginClosing() { close(connection, event: .peerClosed) }
        }
    }

    /// Starts (or moves, when a message was completed) the message deadline while the input holds an incomplete
    /// message; clears it when the input is empty.
    private func trackPartialMessage(_ connection: StreamConnection, progressed: Bool) {
        if connection.input.unreadCount == 0 {
            connection.partialSince = 0
        } else if progressed || connection.partialSince == 0 {
            connection.partialSince = connection.lastActivity
        }
    }

    /// The connection's multishot receive ended (or it is single-shot): arm it again, or close the connection
    /// when the kernel refuses (it would never be read again).
    func receiveEnded(_ event: URingEvent) {
        guard let connection = table.connection(UInt32(truncatingIfNeeded: event.streamKey)), !connection.isClosed
        else { return }
        armReceive(connection)
    }

    private func armReceive(_ connection: StreamConnection) {
        do {
            try ring.armStreamReceive(descriptor: connection.descriptor, key: UInt64(connection.key))
        } catch {
            close(connection, event: .receiveFailed)
        }
    }

    private enum PlaintextRead {
        /// Stopped at two messages' worth buffered: more may be waiting.
        case limitReached
        /// Everything decrypted (or the connection failed and was closed).
        case drained
        /// The peer sent close_notify.
        case peerClosed
    }

    private func readPlaintext(_ connection: StreamConnection, _ tls: TLSSession) -> PlaintextRead {
        let limit = Int(scanLimits.maxMessageSize) * 2
        while !connection.isClosed {
            let status = connection.input.appending { tls.readPlaintext(appendingTo: &$0, limit: limit) }
            switch status {
            case .progress:
                if connection.input.unreadCount >= limit { return .limitReached }
            case .wantMore:
                return .drained
            case .closed:
                return .peerClosed
            case .failed:
                close(connection, event: tls.isHandshakeComplete ? .tlsError : .tlsHandshakeFailed)
            }
        }
        return .drained
    }

    /// Takes every complete message off the front of the connection's input.
    private func frameMessages<Sink: FlowSink>(_ connection: StreamConnection, sink: Sink) {
        if let session = connection.webSocket {
            readWebSocket(connection, session, sink: sink)
            return
        }
        while connection.isReading {
            let frame = connection.input.withUnread { bytes in
                StreamFramer.nextFrame(in: bytes, scanner: pipeline.parser.scanner, limits: scanLimits)
            }
            switch frame {
            case .needMore:
                // Headers or body still coming: never more than one message's worth (the framer refuses a
                // Content-Length past the limit; this catches header blocks that never end).
                if connection.input.unreadCount > Int(scanLimits.maxMessageSize) {
                    refuse(connection, SIPParseError(.messageTooLarge, at: 0), sink: sink)
                }
                return
            case .padding(let consumed):
                connection.input.consume(consumed)
            case .ping(let consumed):
                connection.input.consume(consumed)
                pipeline.counters.keepalives += 1
                _ = send(Self.pong[...], on: connection)
            case .message(let span):
                let flow = flow(of: connection)
                pipeline.counters.received += 1
                connection.input.withUnread { bytes in pipeline.handle(bytes.prefix(span.end), from: flow, sink: sink) }
                if connection.isClosed { return }
                connection.input.consume(span.end)
            case .invalid(let error):
                refuse(connection, error, sink: sink)
                return
            }
        }
    }

    /// The flow a connection of this worker is: what its messages come from and what tokens name.
    func flow(of connection: StreamConnection) -> Flow {
        Flow(transport: connection.transport, worker: worker, connection: connection.key, address: connection.peer)
    }

    /// A stream that cannot be framed (no Content-Length, too large): 400 when the request can be addressed, then
    /// close once it is sent (RFC 3261 §18.3: the stream is lost beyond this point).
    private func refuse<Sink: FlowSink>(_ connection: StreamConnection, _ error: SIPParseError, sink: Sink) {
        pipeline.counters.count(.framingError)
        let flow = flow(of: connection)
        connection.input.withUnread { bytes in
            // The scanner's header table is from framing this very buffer: the reply can copy Via, From, To.
            pipeline.refuseUnparsed(bytes, error: error, from: flow, trusted: false,
                                    now: MonotonicClock.milliseconds(), sink: sink)
        }
        if connection.beginClosing() { close(connection, event: nil) }
    }

    // MARK: Send

    /// The open connection a flow names, when it is this worker's and still the same peer.
    func connection(for flow: Flow) -> StreamConnection? {
        guard flow.worker == worker, let connection = table.connection(flow.connection), connection.peer == flow.address
        else { return nil }
        return connection
    }

    /// ``send(_:on:)-(ArraySlice<UInt8>,_)`` for bytes borrowed for the call: copied into a reused array first (the
    /// stream path queues, encrypts and frames array slices).
    func send(_ bytes: PacketBytes, on connection: StreamConnection) -> Bool {
        outgoingMessage.removeAll(keepingCapacity: true)
        bytes.append(bytes.all, to: &outgoingMessage)
        return send(outgoingMessage[...], on: connection)
    }

    /// Queues a SIP message toward the connection (in a WebSocket frame for ws/wss, encrypted for TLS), in order.
    /// False when the connection was cut, or is a WebSocket not (or no longer) open.
    func send(_ bytes: ArraySlice<UInt8>, on connection: StreamConnection) -> Bool {
        guard let session = connection.webSocket else { return transmit(bytes, on: connection) }
        guard session.phase == .open else { return false }
        outgoingFrame.removeAll(keepingCapacity: true)
        // RFC 7118 §5: a text frame for UTF-8 (what browsers expect), binary for anything else (a binary body).
        WebSocketFrameHeader.appendHeader(opcode: UTF8Check.isValid(bytes) ? .text : .binary, payloadLength: bytes.count,
                                          to: &outgoingFrame)
        outgoingFrame.append(contentsOf: bytes)
        return transmit(outgoingFrame[...], on: connection)
    }

    /// Queues bytes as they are (encrypted for TLS), in order: the stream itself, below any WebSocket framing.
    func transmit(_ bytes: ArraySlice<UInt8>, on connection: StreamConnection) -> Bool {
        guard !connection.isClosed else { return false }
        guard let tls = connection.tls else { return queue(bytes, on: connection) }
        guard tls.write(bytes) else {
            close(connection, event: .tlsError)
            return false
        }
        return flushCiphertext(connection)
    }

    @discardableResult
    private func flushCiphertext(_ connection: StreamConnection) -> Bool {
        guard let tls = connection.tls, tls.hasCiphertext, !connection.isClosed else { return !connection.isClosed }
        ciphertext.removeAll(keepingCapacity: true)
        tls.takeCiphertext(appendingTo: &ciphertext)
        return queue(ciphertext[...], on: connection)
    }

    private func queue(_ bytes: ArraySlice<UInt8>, on connection: StreamConnection) -> Bool {
        // The link to the core carries every client's traffic: it may queue 16 times what one client may.
        let limit = limits.maxSendQueueBytes * (connection.poolSlot == nil ? 1 : 16)
        switch connection.output.offer(bytes, limit: limit) {
        case .sendNow:
            guard ring.sendStream(bytes, descriptor: connection.descriptor, key: UInt64(connection.key)) else {
                close(connection, event: .sendFailed)
                return false
            }
            connection.output.sendStarted()
            return true
        case .queued:
            return true
        case .overflow:
            close(connection, event: .slowReaderCut)
            return false
        }
    }

    func sent(_ event: URingEvent) {
        guard let connection = table.connection(UInt32(truncatingIfNeeded: event.streamKey)) else { return }
        let next = connection.output.sendCompleted()
        guard event.result >= 0 else {
            close(connection, event: .sendFailed)
            return
        }
        if !next.isEmpty {
            _ = queue(next[...], on: connection)
        } else if connection.lifecycle == .closing {
            close(connection, event: nil)
        }
    }

    // MARK: Close

    /// Closes a connection now: cancel its requests first (a close alone would leave the ring holding the socket
    /// open through the armed receive), then release the descriptor and the slot. Late completions carry a key no
    /// connection has any more and are only recycled.
    func close(_ connection: StreamConnection, event: ConnectionEvent?) {
        guard connection.markClosed() else { return }
        if let event { pipeline.counters.count(event) }
        ring.cancelStream(descriptor: connection.descriptor)
        closeStream(connection.descriptor)
        table.remove(connection)
        pipeline.counters.openConnections[Int(connection.transport.rawValue)] -= 1
        if connection.poolSlot == nil {
            clientConnections -= 1
        } else {
            pool.lost(connection, now: MonotonicClock.milliseconds())
            // A close we chose (shutdown, a member DNS removed) says nothing about the upstream's health.
            if event != nil { onPoolFailure?(connection.peer) }
        }
    }

    /// Closes connections silent for longer than the idle timeout; checked once a second. Pool connections are
    /// ours to keep (the core closes them when it wants, and they are dialled again), but one that has not
    /// finished connecting (TCP or TLS handshake) within 5 s is given up and redialled later.
    private func sweepIdle(now: UInt64) {
        guard table.count > 0, now - lastIdleSweep >= sweepInterval else { return }
        lastIdleSweep = now
        for connection in table.all {
            if let session = connection.webSocket, !checkWebSocketTimers(connection, session, now: now) { continue }
            if connection.poolSlot == nil, now - connection.lastActivity > limits.idleTimeoutMilliseconds {
                close(connection, event: .idleClosed)
            } else if connection.partialSince != 0, now - connection.partialSince > limits.messageTimeoutMilliseconds {
                close(connection, event: .messageTimeout)
            } else if connection.poolSlot == nil, let tls = connection.tls, !tls.isHandshakeComplete,
                      now - connection.openedAt > limits.tlsHandshakeTimeoutMilliseconds {
                close(connection, event: .tlsHandshakeTimeout)
            } else if connection.isConnecting, now - connection.lastActivity > 5_000 {
                close(connection, event: .upstreamConnectFailed)
            }
        }
    }

    /// On stop: every connection is closed (its peer sees FIN and reconnects elsewhere).
    func closeAll() {
        for connection in table.all { close(connection, event: nil) }
    }

    // MARK: Upstream pool

    /// The upstream set changed (DNS): slots for new members, and the connections of members that left closed.
    func reconcilePool(with upstreams: [EndpointAddress], now: UInt64) {
        for connection in pool.reconcile(with: upstreams, now: now) { close(connection, event: nil) }
    }

    /// A usable pooled connection to `upstream`, or nil.
    func pooledConnection(to upstream: EndpointAddress) -> StreamConnection? { pool.connection(to: upstream) }

    /// Dials the pool slots that are empty and due. Cheap when all are connected: a pass over a few slots.
    private func dialDueSlots(now: UInt64) {
        guard !pool.isEmpty else { return }
        for slot in pool.slotsToDial(now: now) { dial(slot, now: now) }
    }

    private func dial(_ slot: Int, now: UInt64) {
        let upstream = pool.upstream(of: slot)
        var session: TLSSession?
        if upstreamTransport == .tls {
            guard let context = upstreamTLS, let made = try? TLSSession(context: context, serverName: upstreamServerName)
            else {
                pool.postpone(slot, now: now, delay: pool.settings.reconnectMaxMilliseconds)
                return
            }
            session = made
        }
        guard let key = table.reserve() else {
            pool.postpone(slot, now: now)
            return
        }
        let descriptor: Int32
        do {
            descriptor = try openStreamSocket(family: upstream.family)
        } catch {
            table.release(unused: key)
            pool.postpone(slot, now: now)
            return
        }
        let connection = StreamConnection(key: key, descriptor: descriptor, transport: upstreamTransport,
                                          peer: upstream, now: now, tls: session, poolSlot: slot)
        table.insert(connection)
        pipeline.counters.openConnections[Int(upstreamTransport.rawValue)] += 1
        pool.dialling(slot, on: connection)
        do {
            try ring.connect(descriptor: descriptor, key: UInt64(key), to: upstream)
        } catch {
            close(connection, event: .upstreamConnectFailed)
        }
    }

    func connected(_ event: URingEvent) {
        guard let connection = table.connection(UInt32(truncatingIfNeeded: event.streamKey)),
            connection.poolSlot != nil
        else { return }
        guard event.result == 0 else {
            close(connection, event: .upstreamConnectFailed)
            return
        }
        connection.lastActivity = MonotonicClock.milliseconds()
        setNoDelay(connection.descriptor)
        armReceive(connection)
        guard !connection.isClosed else { return }
        if connection.tls == nil {
            upstreamReady(connection)
        } else {
            // TLS: send the ClientHello; the link is usable (and counted up) once the handshake completes.
            flushCiphertext(connection)
        }
    }

    /// A pool connection is usable: count the event and reset its slot's backoff.
    private func upstreamReady(_ connection: StreamConnection) {
        guard let slot = connection.poolSlot, connection.becameReady() else { return }
        pool.connected(slot)
        pipeline.counters.count(.upstreamConnected)
    }

    /// RFC 5626 §4.4.1: the answer to a CRLF CRLF ping is one CRLF.
    static let pong: [UInt8] = [0x0D, 0x0A]
}
