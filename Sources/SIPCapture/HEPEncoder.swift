public import SIPBytes

/// What one capture says about the message it carries (everything but the bytes).
public struct CaptureMetadata: Sendable {
    /// The IP protocol chunk: 17 UDP, 6 TCP (and WS), 22 TLS (and WSS). HEP has no TLS id of its own; 22 (IDP) is
    /// what Homer's agents (captagent, sofia-sip, reSIProcate) use for it, so Homer shows "TLS".
    public enum IPProtocol: UInt8, Sendable {
        case udp = 17
        case tcp = 6
        case tls = 22
    }

    public var source: EndpointAddress
    public var destination: EndpointAddress
    public var ipProtocol: IPProtocol
    /// Wall-clock time of the receive or send.
    public var seconds: UInt32
    public var microseconds: UInt32

    public init(source: EndpointAddress, destination: EndpointAddress, ipProtocol: IPProtocol, seconds: UInt32,
                microseconds: UInt32) {
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.seconds = seconds
        self.microseconds = microseconds
    }
}

/// HEP v3 (the Homer Encapsulation Protocol as Homer, Kamailio's siptrace/sipcapture and sngrep implement it):
/// `HEP3`, the total length, then chunks of vendor id 0 (generic), type, length (6 + data) and data, all big-endian.
public enum HEPEncoder {
    enum Chunk: UInt16 {
        case ipFamily = 0x0001
        case ipProtocol = 0x0002
        case sourceIPv4 = 0x0003
        case destinationIPv4 = 0x0004
        case sourceIPv6 = 0x0005
        case destinationIPv6 = 0x0006
        case sourcePort = 0x0007
        case destinationPort = 0x0008
        case seconds = 0x0009
        case microseconds = 0x000A
        case protocolType = 0x000B
        case captureAgentID = 0x000C
        case authKey = 0x000E
        case payload = 0x000F
        case correlationID = 0x0011
        case nodeName = 0x0013
    }

    static let chunkHeaderLength = 6
    /// HEP's protocol type for SIP.
    static let protocolTypeSIP: UInt8 = 1

    /// The encoded length of a capture; nil when it exceeds HEP's 16-bit total length (such a message is not
    /// captured, and counted).
    public static func encodedLength(metadata: CaptureMetadata, payloadLength: Int, correlationLength: Int,
                                     authKeyLength: Int, nodeNameLength: Int) -> Int? {
        let addressLength = metadata.source.family == .ipv4 ? 4 : 16
        var length = 6  // "HEP3" + total length
        length += 2 * (chunkHeaderLength + 1)  // family, protocol
        length += 2 * (chunkHeaderLength + addressLength)
        length += 2 * (chunkHeaderLength + 2)  // ports
        length += 2 * (chunkHeaderLength + 4)  // seconds, microseconds
        length += chunkHeaderLength + 1  // protocol type
        length += chunkHeaderLength + 4  // capture agent id
        if authKeyLength > 0 { length += chunkHeaderLength + authKeyLength }
        if correlationLength > 0 { length += chunkHeaderLength + correlationLength }
        if nodeNameLength > 0 { length += chunkHeaderLength + nodeNameLength }
        length += chunkHeaderLength + payloadLength
        return length <= Int(UInt16.max) ? length : nil
    }

    /// Appends one HEP v3 packet to `out`. `authKey` and `nodeName` are omitted when empty; the correlation id
    /// (`correlation`, the Call-ID, so Homer groups a dialog's messages) when it is empty. The caller checked
    /// ``encodedLength(metadata:payloadLength:correlationLength:authKeyLength:nodeNameLength:)``.
    public static func encode(into out: inout [UInt8], metadata: CaptureMetadata, payload: PacketBytes,
                              correlation: [UInt8], authKey: [UInt8], nodeName: [UInt8], captureAgentID: UInt32) {
        let total = encodedLength(metadata: metadata, payloadLength: payload.count, correlationLength: correlation.count,
                                  authKeyLength: authKey.count, nodeNameLength: nodeName.count)!
        out.appendRecord(length: total) { writer in
            writer.u32(0x4845_5033)  // "HEP3"
            writer.u16(UInt16(total))
            let ipv4 = metadata.source.family == .ipv4
            chunk(.ipFamily, length: 1, &writer)
            writer.u8(ipv4 ? 2 : 10)  // AF_INET, AF_INET6
            chunk(.ipProtocol, length: 1, &writer)
            writer.u8(metadata.ipProtocol.rawValue)
            chunk(ipv4 ? .sourceIPv4 : .sourceIPv6, length: ipv4 ? 4 : 16, &writer)
            address(metadata.source, &writer)
            chunk(ipv4 ? .destinationIPv4 : .destinationIPv6, length: ipv4 ? 4 : 16, &writer)
            address(metadata.destination, &writer)
            chunk(.sourcePort, length: 2, &writer)
            writer.u16(metadata.source.port)
            chunk(.destinationPort, length: 2, &writer)
            writer.u16(metadata.destination.port)
            chunk(.seconds, length: 4, &writer)
            writer.u32(metadata.seconds)
            chunk(.microseconds, length: 4, &writer)
            writer.u32(metadata.microseconds)
            chunk(.protocolType, length: 1, &writer)
            writer.u8(protocolTypeSIP)
            chunk(.captureAgentID, length: 4, &writer)
            writer.u32(captureAgentID)
            if !authKey.isEmpty {
                chunk(.authKey, length: authKey.count, &writer)
                writer.bytes(authKey)
            }
            if !correlation.isEmpty {
                chunk(.correlationID, length: correlation.count, &writer)
                writer.bytes(correlation)
            }
            if !nodeName.isEmpty {
                chunk(.nodeName, length: nodeName.count, &writer)
                writer.bytes(nodeName)
            }
            chunk(.payload, length: payload.count, &writer)
            writer.bytes(payload, payload.all)
        }
    }

    private static func chunk(_ type: Chunk, length: Int, _ writer: inout BigEndianWriter) {
        writer.u16(0)  // generic vendor
        writer.u16(type.rawValue)
        writer.u16(UInt16(chunkHeaderLength + length))
    }

    private static func address(_ address: EndpointAddress, _ writer: inout BigEndianWriter) {
        writer.u32(UInt32(truncatingIfNeeded: address.high >> 32))
        if address.family == .ipv6 {
            writer.u32(UInt32(truncatingIfNeeded: address.high))
            writer.u32(UInt32(truncatingIfNeeded: address.low >> 32))
            writer.u32(UInt32(truncatingIfNeeded: address.low))
        }
    }
}
