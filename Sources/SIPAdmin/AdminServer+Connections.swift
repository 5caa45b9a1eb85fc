public import SIPUring

/// One admin connection's progress: reading its request head, sending the response, then waiting for the
/// client to close (so that request bytes it sent past the head do not turn our close into a reset).
final class AdminConnection {
    enum Phase {
        case reading
        case sending
        case closing
    }

    let socket: TCPConnection
    var phase = Phase.reading
    /// Closed when this passes: accept + ``AdminLimits/requestTimeout`` while reading, then response ready +
    /// ``AdminLimits/sendTimeout``. Whole-phase deadlines, not per poll: bytes trickling in buy no time.
    var deadline: ContinuousClock.Instant
    var received: [UInt8] = []
    var response: [UInt8] = []
    var sentCount = 0
    var isFinished = false

    init(socket: TCPConnection, deadline: ContinuousClock.Instant) {
        self.socket = socket
        self.deadline = deadline
    }
}

extension AdminServer {
    /// Serves on `listener` until ``stop()``; call on a dedicated thread. One poll(2) waits on the listener and
    /// every open connection; nothing blocks on any one client.
    public func serve(_ listener: TCPListener) {
        let clock = ContinuousClock()
        // In accept order, the oldest first: eviction takes from the front.
        var connections: [AdminConnection] = []
        var pollSet = PollSet(capacity: limits.maxConnections + 1)
        var acceptResumes = clock.now
        while isRunning {
            let now = clock.now
            pollSet.removeAll()
            let listening = now >= acceptResumes
            if listening { pollSet.watch(listener.descriptor, reading: true, writing: false) }
            let firstConnection = pollSet.count
            for connection in connections {
                pollSet.watch(connection.socket.descriptor, reading: connection.phase != .sending,
                              writing: connection.phase == .sending)
            }
            var wake = now + Self.pollInterval
            if !listening { wake = min(wake, acceptResumes) }
            for connection in connections { wake = min(wake, connection.deadline) }
            pollSet.wait(timeoutMilliseconds: Self.milliseconds(until: wake, from: now))

            let afterWait = clock.now
            for (offset, connection) in connections.enumerated() {
                let readiness = pollSet.readiness(at: firstConnection + offset)
                if !readiness.isEmpty { advance(connection, readiness, now: afterWait) }
            }
            // Dropping a connection closes its socket.
            connections.removeAll { $0.isFinished || $0.deadline <= afterWait }
            if listening, pollSet.readiness(at: 0).contains(.readable),
               !acceptWaiting(on: listener, into: &connections, now: afterWait) {
                acceptResumes = afterWait + Self.pollInterval
            }
        }
    }

    /// Accepts up to ``acceptBatch`` waiting connections, making room under the cap as it goes. False when the
    /// process is out of descriptors with none of its own to give back: accepting pauses for a poll interval
    /// rather than spin on a listener that stays readable.
    private func acceptWaiting(on listener: TCPListener, into connections: inout [AdminConnection],
                               now: ContinuousClock.Instant) -> Bool {
        for _ in 0..<Self.acceptBatch {
            switch listener.acceptConnection() {
            case .accepted(let socket):
                if connections.count >= limits.maxConnections {
                    connections.remove(at: Self.evictionIndex(connections))
                }
                let connection = AdminConnection(socket: socket, deadline: now + limits.requestTimeout)
                // A probe's request usually arrives with the handshake: answer it now, not a poll round later.
                advance(connection, .readable, now: now)
                if !connection.isFinished { connections.append(connection) }
            case .noneWaiting:
                return true
            case .outOfDescriptors:
                guard !connections.isEmpty else { return false }
                connections.remove(at: Self.evictionIndex(connections))
            case .failed:
                return false
            }
        }
        return true
    }

    /// Which connection to close to make room: the oldest that has not completed its request (idle or slow,
    /// as a slowloris is), else the oldest whose response is already out, else the oldest.
    static func evictionIndex(_ connections: [AdminConnection]) -> Int {
        connections.firstIndex { $0.phase == .reading } ?? connections.firstIndex { $0.phase == .closing } ?? 0
    }

    /// Moves `connection` on as far as its socket allows without waiting.
    private func advance(_ connection: AdminConnection, _ readiness: PollReadiness, now: ContinuousClock.Instant) {
        switch connection.phase {
        case .reading:
            guard readiness.contains(.readable) else { return }
            // Never more than the head limit: once it is reached, answer(toReceived:) is final (a head or 431).
            switch connection.socket.receive(maxBytes: limits.maxRequestHeadBytes - connection.received.count) {
            case .received(let bytes):
                connection.received += bytes
                guard let response = answer(toReceived: connection.received) else { return }
                connection.response = response
                connection.received = []
                connection.phase = .sending
                connection.deadline = now + limits.sendTimeout
                send(connection)
            case .wouldBlock:
                return
            case .closed:
                connection.isFinished = true
            }
        case .sending:
            if readiness.contains(.writable) { send(connection) }
        case .closing:
            // Whatever the client still sends is discarded; its close (or the deadline) ends the connection.
            guard readiness.contains(.readable) else { return }
            if connection.socket.receive(maxBytes: 4_096) == .closed { connection.isFinished = true }
        }
    }

    private func send(_ connection: AdminConnection) {
        while connection.sentCount < connection.response.count {
            switch connection.socket.send(connection.response[connection.sentCount...]) {
            case .sent(let count): connection.sentCount += count
            case .wouldBlock: return
            case .failed:
                connection.isFinished = true
                return
            }
        }
        connection.socket.shutdownWrites()
        connection.phase = .closing
    }

    /// Whole milliseconds from `now` to `deadline`, rounded up (rounding down would wake just before a deadline
    /// and spin), never negative.
    static func milliseconds(until deadline: ContinuousClock.Instant, from now: ContinuousClock.Instant) -> Int32 {
        let (seconds, attoseconds) = (deadline - now).components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let roundedUp = attoseconds / perMillisecond + (attoseconds % perMillisecond == 0 ? 0 : 1)
        return Int32(clamping: seconds * 1_000 + roundedUp)
    }
}
