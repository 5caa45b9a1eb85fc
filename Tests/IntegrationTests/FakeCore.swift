import Foundation
import SIPBytes
import SIPUring
import Synchronization

/// A UDP socket on 127.0.0.1 playing the SIP core for tests that read what the edge forwards: it answers the
/// edge's OPTIONS health probes 200 on its own thread, as a real core does (so the edge keeps it in rotation),
/// and keeps every other message for the test to take. With `answersProbes: false` it is a black hole: it
/// answers nothing at all, only counts the probes and keeps the rest.
final class FakeCore: @unchecked Sendable {
    // @unchecked: after init the socket is used only by the serving thread; what it shares is behind the Mutex.
    let address: EndpointAddress
    private let socket: UDPSocket
    private let answersProbes: Bool
    private let received = Mutex<[String]>([])
    private let probeCount = Atomic<Int>(0)
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(answersProbes: Bool = true) throws {
        self.answersProbes = answersProbes
        socket = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        address = socket.localAddress
        Thread { [self] in serve() }.start()
    }

    deinit { stop() }

    /// The messages (other than probes) received since the last call, in arrival order.
    func take() -> [String] {
        received.withLock { messages in
            defer { messages.removeAll() }
            return messages
        }
    }

    /// The messages (other than probes) received so far, without taking them.
    func peek() -> [String] {
        received.withLock { $0 }
    }

    /// The health probes (OPTIONS with the probe Call-ID prefix) received so far, answered or not.
    var probes: Int { probeCount.load(ordering: .acquiring) }

    /// The Call-IDs of ``take()``'s messages.
    func takeCallIDs() -> [String] {
        take().compactMap { text in
            text.split(separator: "\r\n").first { $0.hasPrefix("Call-ID: ") }.map { String($0.dropFirst(9)) }
        }
    }

    /// Stops answering (returns once the thread is done).
    func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
    }

    private func serve() {
        defer { finished.signal() }
        guard let poll = try? ReadinessPoll([socket]) else { return }
        let batch = DatagramBatch(capacity: 64, bufferSize: 8_192)
        while running.load(ordering: .acquiring) {
            guard poll.wait(timeoutMilliseconds: 20) != 0 else { continue }
            while batch.receive(from: socket) > 0 {
                for index in 0..<batch.count {
                    batch.withDatagram(index) { bytes, source in
                        let text = bytes.string(bytes.all)
                        if text.hasPrefix("OPTIONS "), text.contains("\r\nCall-ID: sip-edge-probe-") {
                            probeCount.add(1, ordering: .acquiringAndReleasing)
                            if answersProbes, let source { socket.send(Self.ok(to: text), to: source) }
                        } else {
                            received.withLock { $0.append(text) }
                        }
                    }
                }
            }
        }
    }

    /// 200 OK to a request: its Via, From, To, Call-ID and CSeq lines copied (RFC 3261 §8.2.6.2).
    static func ok(to request: String) -> [UInt8] {
        let copied = request.split(separator: "\r\n").filter { line in
            ["Via:", "From:", "To:", "Call-ID:", "CSeq:"].contains { line.hasPrefix($0) }
        }
        return Array((["SIP/2.0 200 OK"] + copied.map(String.init) + ["Content-Length: 0", "", ""])
            .joined(separator: "\r\n").utf8)
    }
}
