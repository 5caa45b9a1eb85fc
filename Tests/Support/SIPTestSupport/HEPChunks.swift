/// Walks HEP v3 chunks: (type, data) in order. A second reading of the wire format, beside the independent
/// decoder (sngrep) the integration test uses, for the chunks that decoder does not show.
public func hepChunks(_ packet: [UInt8]) -> [(UInt16, [UInt8])]? {
    guard packet.count >= 6, Array(packet[0..<4]) == Array("HEP3".utf8),
          Int(packet[4]) << 8 | Int(packet[5]) == packet.count else { return nil }
    var chunks: [(UInt16, [UInt8])] = []
    var position = 6
    while position + 6 <= packet.count {
        let vendor = UInt16(packet[position]) << 8 | UInt16(packet[position + 1])
        let type = UInt16(packet[position + 2]) << 8 | UInt16(packet[position + 3])
        let length = Int(packet[position + 4]) << 8 | Int(packet[position + 5])
        guard vendor == 0, length >= 6, position + length <= packet.count else { return nil }
        chunks.append((type, Array(packet[(position + 6)..<(position + length)])))
        position += length
    }
    return position == packet.count ? chunks : nil
}
