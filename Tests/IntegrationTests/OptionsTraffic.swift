import SIPBytes
import SIPUring

/// OPTIONS requests sent by a test's own UDP socket playing a client, and the Call-IDs that reach a socket playing
/// the core: how a test tells what the edge forwarded without another process.
enum OptionsTraffic {
    /// Sends one OPTIONS from `client` (its Via names `viaHost` and the socket's port) to `edge`.
    static func send(from client: UDPSocket, viaHost: String, to edge: EndpointAddress, callID: String,
                     userAgent: String? = nil) {
        let port = client.localAddress.port
        let agent = userAgent.map { "User-Agent: \($0)\r\n" } ?? ""
        client.send(Array(("OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP \(viaHost):\(port);branch=z9hG4bK\(callID)\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: \(callID)\r\n"
            + "CSeq: 1 OPTIONS\r\n\(agent)Content-Length: 0\r\n\r\n").utf8), to: edge)
    }

    /// The Call-IDs of the messages waiting on `socket` now, in arrival order (drains the socket).
    static func callIDs(arrivedAt socket: UDPSocket) -> [String] {
        let batch = DatagramBatch(capacity: 16, bufferSize: 4_096)
        var ids: [String] = []
        while batch.receive(from: socket) > 0 {
            for index in 0..<batch.count {
                batch.withDatagram(index) { bytes, _ in
                    let text = bytes.string(bytes.all)
                    if let line = text.split(separator: "\r\n").first(where: { $0.hasPrefix("Call-ID: ") }) {
                        ids.append(String(line.dropFirst(9)))
                    }
                }
            }
        }
        return ids
    }
}
