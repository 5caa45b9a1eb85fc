/// A fixed number of short byte strings in one block, each in a slot of its own: the values of a small
/// direct-mapped cache (the flow-token cache's tokens), with no array per entry. Noncopyable, like
/// ``ScratchBytes``: it owns its memory alone.
public struct ByteSlots: ~Copyable {
    /// Each slot is a length byte, then up to `slotCapacity` bytes.
    @usableFromInline let base: UnsafeMutableRawPointer
    public let count: Int
    public let slotCapacity: Int

    /// `count` empty slots of up to `slotCapacity` (1...255) bytes each.
    public init(count: Int, slotCapacity: Int) {
        precondition(count > 0 && slotCapacity > 0 && slotCapacity <= 255, "ByteSlots sizes out of range")
        self.count = count
        self.slotCapacity = slotCapacity
        base = .allocate(byteCount: count * (slotCapacity + 1), alignment: 16)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count * (slotCapacity + 1))
    }

    deinit { base.deallocate() }

    @inlinable
    func record(_ slot: Int) -> UnsafeMutableRawPointer {
        precondition(slot >= 0 && slot < count, "ByteSlots slot out of range")
        return base + slot * (slotCapacity + 1)
    }

    /// The length of what slot `slot` holds (0 when empty).
    @inlinable
    public func length(of slot: Int) -> Int {
        Int(record(slot).load(as: UInt8.self))
    }

    /// Replaces slot `slot` with the base64url encoding (``Base64URL``) of `raw`, which must fit.
    public mutating func store(base64URLOf raw: [UInt8], in slot: Int) {
        precondition(raw.count <= 96 && (raw.count * 4 + 2) / 3 <= slotCapacity, "ByteSlots value too long")
        let text = record(slot) + 1
        let written = raw.withUnsafeBufferPointer { source in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 128) { scratch in
                let written = Base64URL.encode(source.baseAddress!, count: source.count, into: scratch.baseAddress!)
                text.copyMemory(from: scratch.baseAddress!, byteCount: written)
                return written
            }
        }
        record(slot).storeBytes(of: UInt8(written), as: UInt8.self)
    }

    /// Appends what slot `slot` holds to `output`.
    @inlinable
    public func append<Output: ByteOutput & ~Copyable>(slot: Int, to output: inout Output) {
        let record = record(slot)
        output.appendBytes(UnsafeRawBufferPointer(start: record + 1, count: Int(record.load(as: UInt8.self))))
    }

    /// True when slot `slot` holds exactly the bytes of `span`. The time taken depends on the lengths only, never on
    /// how many bytes match: the slots hold secrets' outputs (signed tokens), and a comparison that stopped at the
    /// first difference would let a sender find a valid value a byte at a time.
    public func holds(_ bytes: PacketBytes, _ span: ByteSpan, in slot: Int) -> Bool {
        let record = record(slot)
        guard bytes.contains(span), Int(record.load(as: UInt8.self)) == span.count else { return false }
        var difference: UInt8 = 0
        for index in 0..<span.count {
            difference |= record.load(fromByteOffset: 1 + index, as: UInt8.self) ^ bytes[span.start + index]
        }
        return difference == 0
    }
}
