public import SIPBytes

/// Edits to a received message, recorded as (offset, bytes removed, bytes inserted) and applied once when the
/// output is built, so the input stays read-only (Kamailio's "lumps"). Storage is reused from message to message:
/// no allocation in steady state.
public struct MessageEditor: ~Copyable {
    struct Edit {
        var offset: Int
        var removeCount: Int
        var insertion: Range<Int>
    }

    /// Slots reused from message to message, the first `editCount` this message's: emptying an array, even keeping
    /// its capacity, costs a generic `replaceSubrange` per message.
    private var edits: [Edit]
    private var editCount = 0
    /// The inserted bytes (edits hold ranges of it): many small appends a message, each a copy here where an
    /// array's costs ~100 instructions.
    private var scratch = ScratchBytes(capacity: 16_384)

    public init() {
        edits = Array(repeating: Edit(offset: 0, removeCount: 0, insertion: 0..<0), count: 16)
    }

    public mutating func reset() {
        editCount = 0
        scratch.truncate(to: 0)
    }

    /// Inserts what `write` appends, before the byte at `offset`.
    public mutating func insert(at offset: Int, _ write: (inout ScratchBytes) -> Void) {
        replace(ByteSpan(offset: offset, length: 0), write)
    }

    /// Removes the bytes of `span`.
    public mutating func delete(_ span: ByteSpan) {
        record(Edit(offset: span.start, removeCount: span.count, insertion: scratch.count..<scratch.count))
    }

    /// Replaces the bytes of `span` with what `write` appends.
    public mutating func replace(_ span: ByteSpan, _ write: (inout ScratchBytes) -> Void) {
        let start = scratch.count
        write(&scratch)
        record(Edit(offset: span.start, removeCount: span.count, insertion: start..<scratch.count))
    }

    private mutating func record(_ edit: Edit) {
        if editCount == edits.count { edits.append(edit) } else { edits[editCount] = edit }
        editCount += 1
    }

    /// Writes `bytes[0..<end]` with the edits applied into `output` (which is cleared first).
    public mutating func apply(to bytes: PacketBytes, end: Int, into output: inout ScratchBytes) {
        // Few edits: an insertion sort, stable so that inserts at one offset keep their order.
        if editCount > 1 {
            for i in 1..<editCount {
                let edit = edits[i]
                var j = i - 1
                while j >= 0 && edits[j].offset > edit.offset {
                    edits[j + 1] = edits[j]
                    j -= 1
                }
                edits[j + 1] = edit
            }
        }
        output.truncate(to: 0)
        var position = 0
        for i in 0..<editCount {
            let edit = edits[i]
            precondition(edit.offset >= position, "overlapping message edits")
            bytes.append(ByteSpan(from: position, to: edit.offset), to: &output)
            scratch.append(edit.insertion, to: &output)
            position = edit.offset + edit.removeCount
        }
        bytes.append(ByteSpan(from: position, to: end), to: &output)
    }
}
