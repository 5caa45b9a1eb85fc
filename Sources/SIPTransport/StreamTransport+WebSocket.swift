import SIPBytes
import SIPMetrics
import SIPParsing
import SIPUring

/// SIP over WebSocket (RFC 7118) on the stream machinery: the upgrade request, frames in and out, the close
/// handshake, and pings that find dead peers. Everything below (TCP, TLS for wss, buffers, send order) is the
/// connection's as for SIP over TCP/TLS.
extension StreamTransport {
    /// Reads what the connection's input holds: the upgrade request while handshaking, then frames.
    func readWebSocket<Sink: FlowSink>(_ connection: StreamConnection, _ session: WebSocketSession, sink: Sink) {
        if session.phase == .handshaking {
            let head = connection.input.withUnread { $0.copyBytes($0.all) }
            switch WebSocketHandshake.read(head, policy: webSocket.handshake) {
            case .needMore:
                return
            case .refuse(_, let response):
                pipeline.counters.count(.webSocketHandshakeRefused)
                session.closing()
                connection.input.consume(connection.input.unreadCount)
                if transmit(response[...], on: connection), connection.beginClosing() { close(connection, event: nil) }
                return
            case .accept(let response, let consumed, _, _):
                connection.input.consume(consumed)
                session.opened()
                pipeline.counters.count(.webSocketOpened)
                guard transmit(response[...], on: connection) else { return }
            }
        }
        // Frames are read where they landed: a message's payload is unmasked in the connection's buffer and
        // handed to the pipeline from there (no copy); only fragments are gathered apart.
        while connection.isReading, connection.input.unreadCount > 0 {
            guard let (frame, end) = connection.input.withStorage({ storage, start in
                session.assembler.nextFrame(in: &storage, from: start)
            }) else { return }
            switch frame {
            case .message(let range, _):
                // After a close frame nothing more is taken (RFC 6455 §5.5.1).
                if session.phase == .open {
                    connection.input.withBytes(in: range) { takeMessage($0, connection, sink: sink) }
                }
                guard !connection.isClosed else { return }
                connection.input.consume(through: end)
            case .fragment:
                connection.input.consume(through: end)
            case .event(let event):
                connection.input.consume(through: end)
                handle(event, connection, session, sink: sink)
            }
        }
    }

    /// One SIP message from a WebSocket message, or a CRLF keep-alive (SIP.js sends them inside frames):
    /// answered with CRLF as on TCP (RFC 5626 §4.4.1).
    private func takeMessage<Sink: FlowSink>(_ bytes: PacketBytes, _ connection: StreamConnection, sink: Sink) {
        guard !EdgeWorker.isKeepalive(bytes) else {
            pipeline.counters.keepalives += 1
            _ = send(StreamTransport.pong[...], on: connection)
            return
        }
        pipeline.counters.received += 1
        pipeline.handle(bytes, from: flow(of: connection), sink: sink)
    }

    private func handle<Sink: FlowSink>(_ event: WebSocketAssembler.Event, _ connection: StreamConnection,
                                        _ session: WebSocketSession, sink: Sink) {
        switch event {
        case .message(let message, _):
            // Reassembled from fragments: the only copy a message gets.
            guard session.phase == .open else { return }
            message.withPacketBytes { takeMessage($0, connection, sink: sink) }
        case .ping(let payload):
            guard session.phase == .open else { return }
            _ = transmit(WebSocketAssembler.frame(.pong, payload)[...], on: connection)
        case .pong:
            session.pingSentAt = nil
        case .close(let code, _):
            pipeline.counters.count(.webSocketClosed)
            let echo = WebSocketSession.echo(ofClose: code)
            closeWebSocket(connection, session,
                           sending: echo.map { WebSocketAssembler.closeFrame(code: $0) } ?? WebSocketAssembler.frame(.close, []))
        case .failed(let code):
            pipeline.counters.count(.webSocketProtocolError)
            closeWebSocket(connection, session, sending: WebSocketAssembler.closeFrame(
                code: code, reason: code == 1009 ? "message too big" : "protocol error"))
        }
    }

    /// Ends a WebSocket: `closeFrame` (ours, or the echo of the peer's) unless one went out already, then the
    /// connection once it is sent.
    func closeWebSocket(_ connection: StreamConnection, _ session: WebSocketSession, sending closeFrame: [UInt8]) {
        let wasOpen = session.phase == .open
        session.closing()
        if wasOpen {
            guard transmit(closeFrame[...], on: connection) else { return }
        }
        if connection.beginClosing() { close(connection, event: nil) }
    }

    /// The WebSocket deadlines at a sweep: the handshake timeout, and the ping that finds a dead peer (pinged
    /// after half the interval silent, cut after a whole interval without an answer: found within two). False
    /// when the connection was closed here.
    func checkWebSocketTimers(_ connection: StreamConnection, _ session: WebSocketSession, now: UInt64) -> Bool {
        switch session.phase {
        case .handshaking:
            guard now - session.acceptedAt < webSocket.handshakeTimeoutMilliseconds else {
                close(connection, event: .webSocketHandshakeTimeout)
                return false
            }
        case .open:
            let interval = webSocket.pingIntervalMilliseconds
            if let sent = session.pingSentAt {
                if connection.lastActivity >= sent {
                    session.pingSentAt = nil  // anything received since shows the peer is there
                } else if now - sent >= interval {
                    close(connection, event: .webSocketPingTimeout)
                    return false
                }
            }
            if session.pingSentAt == nil, now - connection.lastActivity >= interval / 2 {
                session.pingSentAt = now
                _ = transmit(WebSocketAssembler.frame(.ping, [])[...], on: connection)
            }
        case .closing:
            break
        }
        return !connection.isClosed
    }
}
