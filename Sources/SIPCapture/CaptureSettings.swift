public import SIPBytes

/// Where HEP captures go: a collector (Homer's heplify-server, Kamailio's sipcapture, sngrep) over UDP or TCP.
public struct CaptureTarget: Sendable, Equatable, CustomStringConvertible {
    public enum Transport: String, Sendable, CaseIterable {
        case udp, tcp
    }

    public var transport: Transport
    public var address: EndpointAddress

    public init(transport: Transport, address: EndpointAddress) {
        self.transport = transport
        self.address = address
    }

    public var description: String { "\(transport.rawValue):\(address)" }
}

/// `capture.*`: HEP v3 copies of the SIP traffic. Off (no target) by default.
public struct CaptureSettings: Sendable, Equatable {
    public enum Direction: String, Sendable, CaseIterable {
        case received, sent
    }

    public var target: CaptureTarget?
    /// The capture agent id chunk (Homer's "node"). Default: 2001.
    public var nodeID: Int = 2_001
    /// The auth key chunk; nil = none.
    public var password: String?
    /// Dialogs captured, by Call-ID hash (so a call is captured whole or not at all). Default: 100.
    public var samplePercent: Int = 100
    public var include: [Direction] = [.received, .sent]
    /// Encoded captures waiting to leave, per worker, in bytes; the oldest are dropped beyond. Default: 1 MiB.
    public var queueBytes: Int = 1 << 20
    /// Longest a capture waits to be sent with others (32 KiB queued go at once). Default: 20 ms.
    public var flushMilliseconds: Int = 20

    public init() {}

    public var isEnabled: Bool { target != nil && samplePercent > 0 && !include.isEmpty }
}
