public import SIPBytes

/// One WebSocket listener: `ws:HOST:PORT` (plain) or `wss:HOST:PORT` (TLS with the `tls.*` certificate).
public struct WebSocketListener: Sendable, Equatable, CustomStringConvertible {
    public var isSecure: Bool
    public var address: EndpointAddress

    public init(isSecure: Bool, address: EndpointAddress) {
        self.isSecure = isSecure
        self.address = address
    }

    public var description: String { "\(isSecure ? "wss" : "ws"):\(address)" }
}

/// SIP over WebSocket (RFC 7118): where to listen, what a handshake must satisfy, and how dead connections are
/// found. Off while `listeners` is empty.
public struct WebSocketSettings: Sendable, Equatable {
    public var listeners: [WebSocketListener] = []
    public var handshake = WebSocketHandshakePolicy()
    /// A connection that has not completed its upgrade request within this long is cut (slowloris).
    public var handshakeTimeoutMilliseconds: UInt64 = 5_000
    /// A connection silent for half this long is pinged; one that does not answer within this long is cut, so a
    /// dead peer (a browser tab put to sleep, a NAT that forgot the mapping) is found within twice this.
    public var pingIntervalMilliseconds: UInt64 = 30_000

    public init() {}

    public var isEnabled: Bool { !listeners.isEmpty }
    public var plain: WebSocketListener? { listeners.first { !$0.isSecure } }
    public var secure: WebSocketListener? { listeners.first { $0.isSecure } }
}
