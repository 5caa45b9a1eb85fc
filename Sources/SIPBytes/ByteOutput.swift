/// Where generated message text goes: a `[UInt8]`, or a ``ScratchBytes`` when the text is assembled piece by piece
/// on the message path. The writers of message text (literals, decimal, hex, hosts, base64url, packet spans) are
/// generic over it and inlinable, so each specializes to its output type.
public protocol ByteOutput: ~Copyable {
    mutating func append(_ byte: UInt8)
    /// The one raw primitive every other append goes through.
    mutating func appendBytes(_ bytes: UnsafeRawBufferPointer)
}

extension Array: ByteOutput where Element == UInt8 {
    @inlinable
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let start = bytes.baseAddress, bytes.count > 0 else { return }
        // Typed: Array copies an UnsafeBufferPointer with one memcpy, a raw buffer byte by byte.
        append(contentsOf: UnsafeBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }
}

extension ByteOutput where Self: ~Copyable {
    /// Appends ASCII text given as a literal.
    @inlinable
    public mutating func append(ascii text: StaticString) {
        appendBytes(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends all of `bytes`.
    @inlinable
    public mutating func append(bytes: [UInt8]) {
        bytes.withUnsafeBytes { appendBytes($0) }
    }

    /// Appends `count` bytes (at most 64), the `index`th made by `byte(index)`: one capacity check and one copy for
    /// a run of generated text (hex, base64, big-endian fields) where appending byte by byte costs a uniqueness and
    /// capacity check per byte.
    @inlinable
    public mutating func append(count: Int, generatedBy byte: (_ index: Int) -> UInt8) {
        precondition(count >= 0 && count <= 64, "generated run longer than 64 bytes")
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { scratch in
            for index in 0..<count { scratch[index] = byte(index) }
            appendBytes(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<count]))
        }
    }
}

/// A growable byte buffer for text assembled piece by piece on the message path (a forwarded message's inserted
/// headers, then the message itself): an append is a capacity check and one copy, where
/// `Array.append(contentsOf:)` runs ~100 instructions of generic machinery a call, ten or more calls a message.
/// Noncopyable: it owns its memory alone, so an append needs no uniqueness check (a call into the Swift runtime
/// for a copy-on-write buffer, several a message), and a copy that would silently share or duplicate it does not
/// compile.
public struct ScratchBytes: ByteOutput, ~Copyable {
    @usableFromInline var base: UnsafeMutableRawPointer
    @usableFromInline var capacityInBytes: Int
    @usableFromInline var length = 0

    public init(capacity: Int = 4_096) {
        capacityInBytes = Swift.max(capacity, 64)
        base = .allocate(byteCount: capacityInBytes, alignment: 16)
    }

    deinit { base.deallocate() }

    @inlinable
    public var count: Int { length }

    public var capacity: Int { capacityInBytes }

    @inlinable
    public mutating func append(_ byte: UInt8) {
        makeRoom(for: 1)
        base.storeBytes(of: byte, toByteOffset: length, as: UInt8.self)
        length += 1
    }

    @inlinable
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        makeRoom(for: bytes.count)
        (base + length).copyMemory(from: source, byteCount: bytes.count)
        length += bytes.count
    }

    /// Keeps the first `count` bytes (at most `self.count`); the capacity stays.
    @inlinable
    public mutating func truncate(to count: Int) {
        precondition(count >= 0 && count <= length, "truncating ScratchBytes beyond its end")
        length = count
    }

    /// Appends the bytes in `range` (below `count`) to `output`.
    @inlinable
    public func append<Output: ByteOutput & ~Copyable>(_ range: Range<Int>, to output: inout Output) {
        precondition(range.lowerBound >= 0 && range.upperBound <= length, "range outside ScratchBytes")
        output.appendBytes(UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count))
    }

    /// Calls `body` with the bytes (valid only during the call).
    @inlinable
    public func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(start: base, count: length))
    }

    /// Runs `body` with a borrowed view of the bytes (valid only during the call), the way a message leaves: the
    /// sender copies it where it goes (a send slot, a stream's queue) with no array in between.
    @inlinable
    public func withPacketBytes<Result>(_ body: (PacketBytes) -> Result) -> Result {
        withUnsafeBytes { body(PacketBytes(unsafeBorrowing: $0)) }
    }

    /// The bytes as an array (tests, diagnostics).
    public var bytes: [UInt8] {
        var array: [UInt8] = []
        append(0..<length, to: &array)
        return array
    }

    @inlinable @inline(__always)
    mutating func makeRoom(for extra: Int) {
        if _slowPath(extra > capacityInBytes - length) { grow(extra) }
    }

    /// Moves the bytes so far to memory of at least twice the size (or what `extra` needs).
    @usableFromInline
    mutating func grow(_ extra: Int) {
        precondition(extra <= Int.max / 2 - length, "ScratchBytes size overflow")
        let size = Swift.max(length + extra, capacityInBytes * 2)
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        if length > 0 { bigger.copyMemory(from: base, byteCount: length) }
        base.deallocate()
        base = bigger
        capacityInBytes = size
    }
}

extension PacketBytes {
    /// Appends the bytes of `span` to `output` in one copy.
    @inlinable
    public func append<Output: ByteOutput & ~Copyable>(_ span: ByteSpan, to output: inout Output) {
        precondition(contains(span), "span outside PacketBytes")
        guard span.count > 0, let start = base.baseAddress else { return }
        output.appendBytes(UnsafeRawBufferPointer(start: start + span.start, count: span.count))
    }
}
