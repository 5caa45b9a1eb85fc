import Foundation
public import SIPBytes
import SIPParsing
import SIPUring
import Synchronization

/// Sends OPTIONS to every upstream at an interval and remembers when one last answered: readiness means the
/// core behind us is alive, not just that our sockets are bound.
public final class UpstreamProbe: Sendable {
    private let upstreams: [EndpointAddress]
    private let intervalMilliseconds: Int
    private let lastAnswer = Mutex<Date?>(nil)
    private let running = Atomic<Bool>(true)

    public init(upstreams: [EndpointAddress], intervalMilliseconds: Int) {
        self.upstreams = upstreams
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// True when some upstream answered within three intervals.
    public var isUpstreamAnswering: Bool {
        guard let last = lastAnswer.withLock({ $0 }) else { return false }
        return Date().timeIntervalSince(last) * 1_000 < Double(3 * intervalMilliseconds)
    }

    public func stop() { running.store(false, ordering: .releasing) }

    /// Probes until ``stop()``; call on a dedicated thread.
    public func run() {
        guard let anyV4 = EndpointAddress.parse("0.0.0.0", port: 0),
            let socket = try? UDPSocket(binding: upstreams.first?.family == .ipv6
                ? EndpointAddress.parse("::", port: 0)! : anyV4, reusePort: false),
            let parser = try? SIPParser(),
            let readiness = try? ReadinessPoll([socket])
        else { return }
        let batch = DatagramBatch(capacity: 8, bufferSize: 8_192)
        var sequence = 0
        while running.load(ordering: .acquiring) {
            sequence += 1
            let callID = "sip-edge-probe-\(getpid())-\(sequence)"
            for upstream in upstreams {
                socket.send(Self.options(to: upstream, from: socket.localAddress, callID: callID), to: upstream)
            }
            let deadline = Date().addingTimeInterval(Double(intervalMilliseconds) / 1_000)
            while Date() < deadline && running.load(ordering: .acquiring) {
                guard readiness.wait(timeoutMilliseconds: 100) != 0 else { continue }
                let count = batch.receive(from: socket)
                for i in 0..<count {
                    let answered = batch.withDatagram(i) { bytes, _ -> Bool in
                        guard let message = try? parser.parse(bytes), !message.isRequest else { return false }
                        return message.string(message.callID) == callID
                    }
                    if answered { lastAnswer.withLock { $0 = Date() } }
                }
            }
        }
    }

    static func options(to upstream: EndpointAddress, from local: EndpointAddress, callID: String) -> [UInt8] {
        var host: [UInt8] = []
        upstream.appendURIHost(to: &host)
        let target = String(decoding: host, as: UTF8.self) + ":\(upstream.port)"
        return Array(("OPTIONS sip:\(target) SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(local.port);branch=z9hG4bK\(callID);rport\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:sip-edge@localhost>;tag=probe\r\nTo: <sip:\(target)>\r\n"
            + "Call-ID: \(callID)\r\nCSeq: 1 OPTIONS\r\nUser-Agent: sip-edge health probe\r\nContent-Length: 0\r\n\r\n").utf8)
    }
}
