#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and a port, stored inline (no allocation), comparable and hashable: the source of a
/// datagram, an upstream, or a destination read from a Via or URI.
public struct EndpointAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Sendable {
        case ipv4, ipv6
    }

    public let family: Family
    /// Address bytes in network order: IPv4 in the first 4 bytes of `high`, IPv6 across both.
    public let high: UInt64
    public let low: UInt64
    public var port: UInt16

    public init(family: Family, high: UInt64, low: UInt64, port: UInt16) {
        self.family = family
        self.high = high
        self.low = low
        self.port = port
    }

    /// Parses a numeric address: dotted IPv4, textual IPv6 with or without brackets. No DNS, ever.
    public static func parse(_ bytes: PacketBytes, _ span: ByteSpan, port: UInt16) -> EndpointAddress? {
        var text = span
        if text.count >= 2, bytes[text.start] == UInt8(ascii: "["), bytes[text.end - 1] == UInt8(ascii: "]") {
            text = ByteSpan(offset: text.start + 1, length: text.count - 2)
        }
        guard text.count > 0, text.count < 64 else { return nil }
        // Dotted IPv4, the common case on every message (Via hosts, received), read in place; inet_pton otherwise.
        if let dotted = bytes.dottedQuad(in: text) {
            return dotted.isValid ? EndpointAddress(family: .ipv4, high: UInt64(dotted.address) << 32, low: 0, port: port)
                : nil
        }
        // inet_pton wants a NUL-terminated string: copy the few bytes onto the stack.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            for i in 0..<text.count { buffer[i] = CChar(bitPattern: bytes[text.start + i]) }
            buffer[text.count] = 0
            return parseCString(buffer.baseAddress!, port: port)
        }
    }

    /// Parses "1.2.3.4" or "2001:db8::1" (no brackets, no port).
    public static func parse(_ text: String, port: UInt16) -> EndpointAddress? {
        var text = text
        if text.hasPrefix("[") && text.hasSuffix("]") { text = String(text.dropFirst().dropLast()) }
        return text.withCString { parseCString($0, port: port) }
    }

    private static func parseCString(_ text: UnsafePointer<CChar>, port: UInt16) -> EndpointAddress? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return EndpointAddress(family: .ipv4, high: UInt64(UInt32(bigEndian: v4.s_addr)) << 32, low: 0, port: port)
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let (high, low) = withUnsafeBytes(of: &v6) { raw in
                (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                 UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            return EndpointAddress(family: .ipv6, high: high, low: low, port: port)
        }
        return nil
    }

    /// The IPv4 address as a host-order UInt32 (IPv4 only).
    public var ipv4: UInt32 { UInt32(truncatingIfNeeded: high >> 32) }

    /// 0.0.0.0 or `::`: a bind to every address of its family.
    public var isWildcard: Bool { high == 0 && low == 0 }

    /// Writes the address (IPv6 without brackets) as ASCII into `output`, without allocating beyond its growth.
    @inlinable
    public func appendHost<Output: ByteOutput & ~Copyable>(to output: inout Output) {
        switch family {
        case .ipv4:
            // Written whole on the stack, then one append: every forwarded request from a client gets a received=.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { text in
                let value = ipv4
                var length = 0
                for shift in stride(from: 24, through: 0, by: -8) {
                    let octet = UInt8(truncatingIfNeeded: value >> UInt32(shift))
                    if octet >= 100 {
                        text[length] = UInt8(ascii: "0") + octet / 100
                        length += 1
                    }
                    if octet >= 10 {
                        text[length] = UInt8(ascii: "0") + octet / 10 % 10
                        length += 1
                    }
                    text[length] = UInt8(ascii: "0") + octet % 10
                    length += 1
                    if shift > 0 {
                        text[length] = UInt8(ascii: ".")
                        length += 1
                    }
                }
                output.appendBytes(UnsafeRawBufferPointer(start: text.baseAddress, count: length))
            }
        case .ipv6:
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { buffer in
                let length = Self.writeIPv6Text(high: high, low: low, into: UnsafeMutableRawBufferPointer(buffer))
                output.appendBytes(UnsafeRawBufferPointer(start: buffer.baseAddress, count: length))
            }
        }
    }

    /// inet_ntop's text of an IPv6 address into `buffer` (64 bytes); its length (0 if inet_ntop failed).
    @usableFromInline
    static func writeIPv6Text(high: UInt64, low: UInt64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= Int(INET6_ADDRSTRLEN), "IPv6 text buffer too small")
        var address = in6_addr()
        withUnsafeMutableBytes(of: &address) { raw in
            raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
            raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
        }
        let text = buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
        guard inet_ntop(AF_INET6, &address, text, socklen_t(buffer.count)) != nil else { return 0 }
        return strlen(text)
    }

    /// Host as it appears in a URI or Via sent-by: IPv6 in brackets.
    @inlinable
    public func appendURIHost<Output: ByteOutput & ~Copyable>(to output: inout Output) {
        if family == .ipv6 { output.append(UInt8(ascii: "[")) }
        appendHost(to: &output)
        if family == .ipv6 { output.append(UInt8(ascii: "]")) }
    }

    /// `host:port` as a URI or a Via sent-by writes it (IPv6 in brackets), with `port` or this address's own.
    @inlinable
    public func appendURIHostPort<Output: ByteOutput & ~Copyable>(to output: inout Output, port: UInt16? = nil) {
        appendURIHost(to: &output)
        output.append(UInt8(ascii: ":"))
        appendDecimal(UInt64(port ?? self.port), to: &output)
    }

    public var description: String {
        var bytes: [UInt8] = []
        appendURIHostPort(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Appends `value` in decimal ASCII (ports, lengths, CSeq numbers on the forwarding path): digits written from the
/// end into scratch memory, then one copy.
@inlinable
public func appendDecimal<Output: ByteOutput & ~Copyable>(_ value: UInt64, to output: inout Output) {
    if value < 10 {
        output.append(UInt8(ascii: "0") + UInt8(value))
        return
    }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
        var rest = value
        var first = digits.count
        repeat {
            first -= 1
            digits[first] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
        } while rest > 0
        output.appendBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(digits)[first...]))
    }
}

/// Appends `value` as 16 lowercase hexadecimal digits (Via branches, tags).
@inlinable
public func appendHex<Output: ByteOutput & ~Copyable>(_ value: UInt64, to output: inout Output) {
    output.append(count: 16) { index in
        let nibble = UInt8(truncatingIfNeeded: value >> UInt64(60 - 4 * index)) & 0xF
        return nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") - 10 + nibble
    }
}
