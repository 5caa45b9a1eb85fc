/// Writes a binary record (network byte order) straight into an array's storage: one capacity and uniqueness
/// check per record instead of one per byte, for encoders on the message path (HEP captures). Only
/// ``Swift/Array/appendRecord(length:_:)`` makes one, and it never outlives that call.
public struct BigEndianWriter {
    private let base: UnsafeMutableRawPointer
    private let capacity: Int
    public private(set) var offset = 0

    fileprivate init(base: UnsafeMutableRawPointer, capacity: Int) {
        self.base = base
        self.capacity = capacity
    }

    public mutating func u8(_ value: UInt8) {
        precondition(offset + 1 <= capacity, "record longer than announced")
        base.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
        offset += 1
    }

    public mutating func u16(_ value: UInt16) {
        precondition(offset + 2 <= capacity, "record longer than announced")
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
        offset += 2
    }

    public mutating func u32(_ value: UInt32) {
        precondition(offset + 4 <= capacity, "record longer than announced")
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
        offset += 4
    }

    public mutating func bytes(_ value: [UInt8]) {
        precondition(offset + value.count <= capacity, "record longer than announced")
        value.withUnsafeBytes { source in
            if let address = source.baseAddress { (base + offset).copyMemory(from: address, byteCount: source.count) }
        }
        offset += value.count
    }

    /// The bytes of `span` in `packet`.
    public mutating func bytes(_ packet: PacketBytes, _ span: ByteSpan) {
        precondition(packet.contains(span) && offset + span.count <= capacity, "record longer than announced")
        if span.count > 0 {
            (base + offset).copyMemory(from: packet.base.baseAddress! + span.start, byteCount: span.count)
        }
        offset += span.count
    }
}

extension Array where Element == UInt8 {
    /// Appends a record of exactly `length` bytes, written by `body`.
    public mutating func appendRecord(length: Int, _ body: (inout BigEndianWriter) -> Void) {
        let start = count
        append(contentsOf: repeatElement(0, count: length))
        withUnsafeMutableBytes { storage in
            var writer = BigEndianWriter(base: storage.baseAddress! + start, capacity: length)
            body(&writer)
            precondition(writer.offset == length, "record shorter than announced")
        }
    }
}
