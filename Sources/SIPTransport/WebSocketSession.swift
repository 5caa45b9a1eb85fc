import SIPParsing

/// The WebSocket layer of one ws/wss connection (RFC 6455, RFC 7118): the upgrade, then frames carrying one SIP
/// message each, and the pings that find a dead peer. The connection's input holds the bytes (plaintext for wss);
/// this holds where the connection is and the reassembly of fragmented messages.
final class WebSocketSession {
    enum Phase: Equatable {
        /// Waiting for the HTTP upgrade request (cut at the handshake timeout).
        case handshaking
        /// Frames flow both ways.
        case open
        /// A close frame went out (ours, or the echo of the peer's): nothing more is sent, and the connection is
        /// closed once that frame is.
        case closing
    }

    private(set) var phase = Phase.handshaking
    /// Monotonic milliseconds the connection was accepted at: the handshake deadline counts from here.
    let acceptedAt: UInt64
    var assembler: WebSocketAssembler
    /// When our unanswered ping went out; nil when none is outstanding.
    var pingSentAt: UInt64?

    init(acceptedAt: UInt64, maxMessage: Int) {
        self.acceptedAt = acceptedAt
        assembler = WebSocketAssembler(maxMessage: maxMessage)
    }

    func opened() { if phase == .handshaking { phase = .open } }
    func closing() { phase = .closing }

    /// The code to answer a peer's close with (RFC 6455 §5.5.1, §7.4): its own when it may be sent in a frame,
    /// nil (an empty close) when it sent none, 1002 when it sent one that is reserved or unassigned.
    static func echo(ofClose code: UInt16) -> UInt16? {
        switch code {
        case 1005: nil
        case 1000...1003, 1007...1011, 3000...4999: code
        default: 1002
        }
    }
}
