import SIPBytes
#if canImport(Glibc)
import Glibc
#endif
import SIPParsing
import SIPProxyCore
import SIPSettings
import SIPSecurity
import SIPUring

/// SIP over TCP and TLS on the worker's ring (RFC 3261 §18.3): accept, receive into provided buffers, frame by
/// Content-Length, hand each message to the same path as a datagram, and send in order with one send in flight per
/// connection. Every buffer is bounded: a peer that sends too much is refused, one that reads too slowly is cut.
extension EdgeWorker {
    // MARK: Accept

    func accept(_ event: URingEvent) {
        guard event.result >= 0 else { return }
        let descriptor = event.result
        let isTLS = event.socketTag == Self.tlsAcceptTag
        guard let peer = event.source else {
            closeStream(descriptor)
            return
        }
        // A connection counts as a request for the source's rate limit: one address opening connections in a loop
        // is throttled and banned like one sending requests in a loop, before it can fill the table.
        if !isTrusted(peer), limiter.check(peer, isRegister: false, now: MonotonicClock.milliseconds()) != .allow {
            countConnectionEvent("refused_rate_limited")
            closeStream(descriptor)
            return
        }
        guard clientConnections < configuration.streams.maxConnections, let key = streams.reserve() else {
            countConnectionEvent("refused_full")
            closeStream(descriptor)
            return
        }
        var session: TLSSession?
        if isTLS {
            guard let context = tlsContext, let made = try? TLSSession(context: context, serverName: nil) else {
                streams.release(unused: key)
                countConnectionEvent("tls_handshake_failed")
                closeStream(descriptor)
                return
            }
            session = made
        }
        let connection = StreamConnection(key: key, descriptor: descriptor, transport: isTLS ? .tls : .tcp,
                                          peer: peer, now: MonotonicClock.milliseconds(), tls: session)
        streams.insert(connection)
        clientConnections += 1
        counters.openConnections[connection.transport, default: 0] += 1
        countConnectionEvent("accepted")
        setNoDelay(descriptor)
        do {
            try ringForStreams.armStreamReceive(descriptor: descriptor, key: UInt64(key))
        } catch {
            close(connection, event: "receive_failed")
        }
    }

    // MARK: Receive

    func receiveStream(_ event: URingEvent) {
        guard let connection = streams.connection(UInt32(truncatingIfNeeded: event.streamKey)) else { return }
        if event.result == -ENOBUFS || event.result == -EBUSY {
            // The provided buffers (shared with UDP) ran out for a moment: the bytes wait in the socket, and the
            // receive is armed again (needsRearm). Not the peer's doing: the connection stays.
            counters.receiveBufferExhaustion += 1
            return
        }
        guard event.result > 0, let payload = event.payload else {
            close(connection, event: "peer_closed")
            return
        }
        connection.lastActivity = MonotonicClock.milliseconds()
        // Refused (a final 400 on its way out): the rest of the stream is not read.
        guard !connection.closeWhenFlushed else { return }
        guard let tls = connection.tls else {
            payload.append(payload.all, to: &connection.inbound)
            frameMessages(connection)
            return
        }
        guard tls.feed(payload) else {
            close(connection, event: "tls_error")
            return
        }
        // Decrypt and frame in turns, so one segment carrying many records never needs more than two messages'
        // worth of plaintext buffered, and nothing decrypted is left waiting for a segment that may not come.
        var more = true
        while more, !connection.isClosed, !connection.closeWhenFlushed {
            more = readPlaintext(connection, tls)
            flushCiphertext(connection)
            if connection.isConnecting, tls.isHandshakeComplete { upstreamReady(connection) }
            if !connection.isClosed { frameMessages(connection) }
        }
        if connection.peerClosed, !connection.isClosed {
            // Everything sent before close_notify has been handled; what we still owe it is flushed first.
            connection.closeWhenFlushed = true
            if !connection.sendInFlight { close(connection, event: "peer_closed") }
        }
    }

    func rearmStream(_ event: URingEvent) {
        guard let connection = streams.connection(UInt32(truncatingIfNeeded: event.streamKey)), !connection.isClosed
        else { return }
        do {
            try ringForStreams.armStreamReceive(descriptor: connection.descriptor, key: UInt64(connection.key))
        } catch {
            close(connection, event: "receive_failed")
        }
    }

    /// Decrypts what the TLS session has, up to two messages' worth buffered. True when it stopped at that limit
    /// (more plaintext may be waiting).
    private func readPlaintext(_ connection: StreamConnection, _ tls: TLSSession) -> Bool {
        let limit = Int(configuration.parseLimits.scan.maxMessageSize) * 2
        while !connection.isClosed {
            switch tls.readPlaintext(appendingTo: &connection.inbound, limit: limit) {
            case .progress:
                if connection.inbound.count >= limit { return true }
            case .wantMore:
                return false
            case .closed:
                connection.peerClosed = true
                return false
            case .failed:
                close(connection, event: tls.isHandshakeComplete ? "tls_error" : "tls_handshake_failed")
            }
        }
        return false
    }

    /// Takes every complete message off the front of the connection's buffer.
    private func frameMessages(_ connection: StreamConnection) {
        let limits = configuration.parseLimits.scan
        while !connection.isClosed, !connection.closeWhenFlushed {
            let frame = connection.inbound.withPacketBytes { bytes in
                StreamFramer.nextFrame(in: bytes, scanner: framingScanner, limits: limits)
            }
            switch frame {
            case .needMore:
                // Headers or body still coming: never more than one message's worth (the framer refuses a
                // Content-Length past the limit; this catches header blocks that never end).
                if connection.inbound.count > Int(limits.maxMessageSize) {
                    refuseStream(connection, SIPParseError(.messageTooLarge, at: 0))
                }
                return
            case .padding(let consumed):
                connection.inbound.removeFirst(consumed)
            case .ping(let consumed):
                connection.inbound.removeFirst(consumed)
                counters.keepalives += 1
                _ = sendOnStream(connection, Self.pong[...])
            case .message(let span):
                let flow = flow(of: connection)
                counters.received += 1
                connection.inbound.withPacketBytes { bytes in handle(bytes.prefix(span.end), from: flow) }
                connection.inbound.removeFirst(span.end)
            case .invalid(let error):
                refuseStream(connection, error)
                return
            }
        }
    }

    /// The flow a connection of this worker is: what its messages come from and what tokens name.
    private func flow(of connection: StreamConnection) -> Flow {
        Flow(transport: connection.transport, worker: UInt8(truncatingIfNeeded: index), connection: connection.key,
             address: connection.peer)
    }

    /// A stream that cannot be framed (no Content-Length, too large): 400 when the request can be addressed, then
    /// close once it is sent (RFC 3261 §18.3: the stream is lost beyond this point).
    private func refuseStream(_ connection: StreamConnection, _ error: SIPParseError) {
        countConnectionEvent("framing_error")
        let flow = flow(of: connection)
        connection.inbound.withPacketBytes { bytes in
            // The scanner's header table is from framing this very buffer: the reply can copy Via, From, To.
            refuseUnparsed(bytes, error: error, from: flow, trusted: false, now: MonotonicClock.milliseconds())
        }
        connection.closeWhenFlushed = true
        if !connection.sendInFlight { close(connection, event: nil) }
    }

    // MARK: Send

    /// Queues `bytes` toward the connection (encrypted for TLS). At most one send is in flight per connection, so
    /// the order is kept; the rest waits in a bounded queue. False when the connection was cut.
    func sendOnStream(_ connection: StreamConnection, _ bytes: ArraySlice<UInt8>) -> Bool {
        guard !connection.isClosed else { return false }
        guard let tls = connection.tls else { return queue(bytes, on: connection) }
        guard tls.write(bytes) else {
            close(connection, event: "tls_error")
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
        if !connection.sendInFlight {
            guard ringForStreams.sendStream(bytes, descriptor: connection.descriptor, key: UInt64(connection.key)) else {
                close(connection, event: "send_failed")
                return false
            }
            connection.sendInFlight = true
            return true
        }
        // The link to the core carries every client's traffic: it may queue 16 times what one client may.
        let limit = configuration.streams.maxSendQueueBytes * (connection.poolSlot == nil ? 1 : 16)
        guard connection.outbound.count + bytes.count <= limit else {
            close(connection, event: "slow_reader_cut")
            return false
        }
        connection.outbound.append(contentsOf: bytes)
        return true
    }

    func streamSent(_ event: URingEvent) {
        guard let connection = streams.connection(UInt32(truncatingIfNeeded: event.streamKey)) else { return }
        connection.sendInFlight = false
        guard event.result >= 0 else {
            close(connection, event: "send_failed")
            return
        }
        if !connection.outbound.isEmpty {
            let pending = connection.outbound
            connection.outbound.removeAll(keepingCapacity: true)
            _ = queue(pending[...], on: connection)
        } else if connection.closeWhenFlushed {
            close(connection, event: nil)
        }
    }

    // MARK: Close

    /// Closes a connection now: cancel its requests first (a close alone would leave the ring holding the socket
    /// open through the armed receive), then release the descriptor and the slot. Late completions carry a key no
    /// connection has any more and are only recycled.
    func close(_ connection: StreamConnection, event: String?) {
        guard !connection.isClosed else { return }
        connection.isClosed = true
        if let event { countConnectionEvent(event) }
        ringForStreams.cancelStream(descriptor: connection.descriptor)
        closeStream(connection.descriptor)
        streams.remove(connection)
        counters.openConnections[connection.transport, default: 1] -= 1
        if connection.poolSlot == nil { clientConnections -= 1 }
        if let slot = connection.poolSlot, pool[slot].connection === connection {
            if !connection.isConnecting { counters.upstreamConnections -= 1 }
            // Try again later, waiting longer after each failure in a row.
            pool[slot].connection = nil
            pool[slot].nextAttempt = MonotonicClock.milliseconds() + pool[slot].backoff
            pool[slot].backoff = min(pool[slot].backoff * 2, configuration.upstreamPool.reconnectMaxMilliseconds)
        }
    }

    /// Closes connections silent for longer than the idle timeout; checked once a second.
    func sweepIdleStreams() {
        guard streams.count > 0 else { return }
        let now = MonotonicClock.milliseconds()
        guard now - lastIdleSweep >= 1_000 else { return }
        lastIdleSweep = now
        let timeout = configuration.streams.idleTimeoutMilliseconds
        // Pool connections are ours to keep: the core closes them when it wants, and they are dialled again; one
        // that has not finished connecting (TCP or TLS handshake) within 5 s is given up and redialled later.
        for connection in streams.all {
            if connection.poolSlot == nil, now - connection.lastActivity > timeout {
                close(connection, event: "idle_closed")
            } else if connection.poolSlot != nil, connection.isConnecting, now - connection.lastActivity > 5_000 {
                close(connection, event: "upstream_connect_failed")
            }
        }
    }

    /// On stop: every connection is closed (its peer sees FIN and reconnects elsewhere).
    func closeAllStreams() {
        for connection in streams.all { close(connection, event: nil) }
    }

    // MARK: Upstream pool

    /// Dials the pool slots that are empty and due. Cheap when all are connected: a pass over a few slots.
    func maintainUpstreamPool() {
        guard !pool.isEmpty else { return }
        let now = MonotonicClock.milliseconds()
        for slot in pool.indices where pool[slot].connection == nil && now >= pool[slot].nextAttempt {
            dial(slot, now: now)
        }
    }

    private func dial(_ slot: Int, now: UInt64) {
        let upstream = pool[slot].upstream
        let transport = configuration.proxy.upstreamTransport
        var session: TLSSession?
        if transport == .tls {
            guard let context = configuration.upstreamTLS,
                let made = try? TLSSession(context: context, serverName: configuration.upstreamPool.tlsServerName)
            else {
                pool[slot].nextAttempt = now + configuration.upstreamPool.reconnectMaxMilliseconds
                return
            }
            session = made
        }
        guard let key = streams.reserve() else { return }
        let descriptor: Int32
        do {
            descriptor = try openStreamSocket(family: upstream.family)
        } catch {
            streams.release(unused: key)
            pool[slot].nextAttempt = now + pool[slot].backoff
            return
        }
        let connection = StreamConnection(key: key, descriptor: descriptor, transport: transport, peer: upstream,
                                          now: now, tls: session)
        connection.poolSlot = slot
        connection.isConnecting = true
        streams.insert(connection)
        counters.openConnections[transport, default: 0] += 1
        pool[slot].connection = connection
        do {
            try ringForStreams.connect(descriptor: descriptor, key: UInt64(key), to: upstream)
        } catch {
            close(connection, event: "upstream_connect_failed")
        }
    }

    func upstreamConnected(_ event: URingEvent) {
        guard let connection = streams.connection(UInt32(truncatingIfNeeded: event.streamKey)),
            connection.poolSlot != nil
        else { return }
        guard event.result == 0 else {
            close(connection, event: "upstream_connect_failed")
            return
        }
        connection.lastActivity = MonotonicClock.milliseconds()
        setNoDelay(connection.descriptor)
        do {
            try ringForStreams.armStreamReceive(descriptor: connection.descriptor, key: UInt64(connection.key))
        } catch {
            close(connection, event: "receive_failed")
            return
        }
        if connection.tls == nil {
            upstreamReady(connection)
        } else {
            // TLS: send the ClientHello; the link is usable (and counted up) once the handshake completes.
            flushCiphertext(connection)
        }
    }

    /// A pool connection is usable: count it up and reset its slot's backoff.
    private func upstreamReady(_ connection: StreamConnection) {
        guard let slot = connection.poolSlot, connection.isConnecting else { return }
        connection.isConnecting = false
        counters.upstreamConnections += 1
        pool[slot].backoff = configuration.upstreamPool.reconnectMinMilliseconds
        countConnectionEvent("upstream_connected")
    }

    /// A connected pool connection to `upstream`, or nil when none is up. The first one up takes the traffic, so
    /// a transaction's requests keep their order; the others stand by.
    func pooledConnection(to upstream: EndpointAddress) -> StreamConnection? {
        for slot in pool where slot.upstream == upstream {
            if let connection = slot.connection, !connection.isConnecting, !connection.isClosed { return connection }
        }
        return nil
    }

    private func countConnectionEvent(_ name: String) {
        counters.connectionEvents[name, default: 0] += 1
    }

    private var ringForStreams: URing {
        // Stream listeners exist only when the worker has a ring (see init), so every caller here has one.
        ring!
    }

    /// RFC 5626 §4.4.1: the answer to a CRLF CRLF ping is one CRLF.
    static let pong: [UInt8] = [0x0D, 0x0A]
}
