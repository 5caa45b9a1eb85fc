/// Redis' wire protocol (RESP2): commands go out as arrays of bulk strings; replies come back as one of five
/// types. Pure values: the link does the I/O.
public enum RESPValue: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8]?)
    case array([RESPValue]?)

    /// The bytes of a bulk or simple string as text.
    public var text: String? {
        switch self {
        case .simple(let text): text
        case .bulk(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}

public enum RESP {
    /// `*N\r\n$len\r\narg\r\n...`
    public static func command(_ arguments: [String]) -> [UInt8] {
        var out = Array("*\(arguments.count)\r\n".utf8)
        for argument in arguments {
            let bytes = Array(argument.utf8)
            out += Array("$\(bytes.count)\r\n".utf8)
            out += bytes
            out += [0x0D, 0x0A]
        }
        return out
    }

    public struct ProtocolError: Error, Equatable {
        public let reason: String
    }

    /// Parses one reply from the start of `buffer`: the value and the bytes it took, nil when more bytes are
    /// needed. Bounded: a bulk string or array longer than `maxLength` is a protocol error, not an allocation.
    public static func parse(_ buffer: [UInt8], from start: Int = 0,
                             maxLength: Int = 16 << 20) throws(ProtocolError) -> (RESPValue, Int)? {
        guard start < buffer.count else { return nil }
        guard let lineEnd = lineEnd(buffer, from: start + 1) else { return nil }
        let line = String(decoding: buffer[(start + 1)..<lineEnd], as: UTF8.self)
        let next = lineEnd + 2
        switch buffer[start] {
        case UInt8(ascii: "+"): return (.simple(line), next - start)
        case UInt8(ascii: "-"): return (.error(line), next - start)
        case UInt8(ascii: ":"):
            guard let value = Int64(line) else { throw ProtocolError(reason: "bad integer \(line)") }
            return (.integer(value), next - start)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1, length <= maxLength else {
                throw ProtocolError(reason: "bad bulk length \(line)")
            }
            if length == -1 { return (.bulk(nil), next - start) }
            guard buffer.count >= next + length + 2 else { return nil }
            return (.bulk(Array(buffer[next..<(next + length)])), next + length + 2 - start)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1, count <= maxLength else {
                throw ProtocolError(reason: "bad array length \(line)")
            }
            if count == -1 { return (.array(nil), next - start) }
            var items: [RESPValue] = []
            var position = next
            for _ in 0..<count {
                guard let (item, used) = try parse(buffer, from: position, maxLength: maxLength) else { return nil }
                items.append(item)
                position += used
            }
            return (.array(items), position - start)
        default:
            throw ProtocolError(reason: "unknown reply type \(buffer[start])")
        }
    }

    private static func lineEnd(_ buffer: [UInt8], from start: Int) -> Int? {
        var index = start
        while index + 1 < buffer.count {
            if buffer[index] == 0x0D && buffer[index + 1] == 0x0A { return index }
            index += 1
        }
        return nil
    }
}
