public import SIPBytes

/// Edits to a received message, recorded as (offset, bytes removed, bytes inserted) and applied once when the
/// output is built, so the input stays read-only (Kamailio's "lumps"). Storage is reused from message to message:
/// no allocation in steady state.
public struct MessageEditor {
    struct Edit {
        var offset: Int
        var removeCount: Int
        var insertion: Range<Int>
    }

    private var edits: [Edit] = []
    private var scratch: [UInt8] = []

    public init() {
        edits.reserveCapacity(16)
        scratch.reserveCapacity(1_024)
    }

    public mutating func reset() {
        edits.removeAll(keepingCapacity: true)
        scratch.removeAll(keepingCapacity: true)
    }

    /// Inserts what `write` appends, before the byte at `offset`.
    public mutating func insert(at offset: Int, _ write: (inout [UInt8]) -> Void) {
        replace(ByteSpan(offset: offset, length: 0), write)
    }

    /// Removes the bytes of `span`.
    public mutating func delete(_ span: ByteSpan) {
        edits.append(Edit(offset: span.start, removeCount: span.count, insertion: scratch.count..<scratch.count))
    }

    /// Replaces the bytes of `span` with what `write` appends.
    public mutating func replace(_ span: ByteSpan, _ write: (inout [UInt8]) -> Void) {
        let start = scratch.count
        write(&scratch)
        edits.append(Edit(offset: span.start, removeCount: span.count, insertion: start..<scratch.count))
    }

    /// Writes `bytes[0..<end]` with the edits applied into `output` (which is cleared first).
    public mutating func apply(to bytes: PacketBytes, end: Int, into output: inout [UInt8]) {
        // Few edits: an insertion sort, stable so that inserts at one offset keep their order.
        if edits.count > 1 {
            for i in 1..<edits.count {
                let edit = edits[i]
                var j = i - 1
                while j >= 0 && edits[j].offset > edit.offset {
                    edits[j + 1] = edits[j]
                    j -= 1
                }
                edits[j + 1] = edit
            }
        }
        output.removeAll(keepingCapacity: true)
        var position = 0
        for edit in edits {
            precondition(edit.offset >= position, "overlapping message edits")
            bytes.append(ByteSpan(from: position, to: edit.offset), to: &output)
            output.append(contentsOf: scratch[edit.insertion])
            position = edit.offset + edit.removeCount
        }
        bytes.append(ByteSpan(from: position, to: end), to: &output)
    }
}
