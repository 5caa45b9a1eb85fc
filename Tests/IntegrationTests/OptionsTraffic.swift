import SIPBytes
import SIPUring

/// OPTIONS requests sent by a test's own UDP socket playing a client (``FakeCore`` plays the core): how a test
/// tells what the edge forwards without another process.
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
}
