/// A byte range inside one message buffer: offset and length, 32 bits each, so a span is 8 bytes and a header
/// index stays compact. Spans are what outlives a parse: they are plain values, never pointers.
public struct ByteSpan: Hashable, Sendable, CustomStringConvertible {
    public var offset: UInt32
    public var length: UInt32

    @inlinable
    public init(offset: UInt32, length: UInt32) {
        self.offset = offset
        self.length = length
    }

    /// - Precondition: both values fit in 32 bits and are not negative.
    @inlinable
    public init(offset: Int, length: Int) {
        // Negative values read as huge unsigned ones: one comparison each covers both rules.
        precondition(UInt(bitPattern: offset) <= UInt(UInt32.max) && UInt(bitPattern: length) <= UInt(UInt32.max),
                     "span out of range")
        self.offset = UInt32(truncatingIfNeeded: offset)
        self.length = UInt32(truncatingIfNeeded: length)
    }

    /// A span from `start` up to, not including, `end`.
    /// - Precondition: 0 <= start <= end <= UInt32.max.
    @inlinable
    public init(from start: Int, to end: Int) {
        // Spans are built on every step of a parse: two unsigned comparisons check all three bounds at once.
        precondition(UInt(bitPattern: start) <= UInt(bitPattern: end) && UInt(bitPattern: end) <= UInt(UInt32.max),
                     "span out of range")
        self.offset = UInt32(truncatingIfNeeded: start)
        self.length = UInt32(truncatingIfNeeded: end &- start)
    }

    public static let empty = ByteSpan(offset: 0, length: 0)

    @inlinable public var start: Int { Int(offset) }
    @inlinable public var end: Int { Int(offset) + Int(length) }
    @inlinable public var count: Int { Int(length) }
    @inlinable public var isEmpty: Bool { length == 0 }

    public var description: String { "[\(offset)+\(length)]" }
}
