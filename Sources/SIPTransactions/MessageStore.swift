/// Copies of messages a transaction must be able to send again (the request it retransmits toward the core, the
/// last response it resends to the client), kept in one arena of fixed-size blocks allocated at start: storing and
/// releasing a message allocates nothing, and the memory a worker's transactions can hold is bounded up front.
///
/// A message takes ceil(length / blockSize) blocks chained by index; a message that does not fit in the free
/// blocks is not stored (the caller then sends it once, statelessly, and counts that). Blocks of 512 bytes waste
/// at most 511 bytes per message, against a free list per size class that would need tuning per deployment.
public struct MessageStore: Sendable {
    /// A stored message: its first block and its length. Valid until ``release(_:)``.
    public struct Handle: Sendable, Equatable {
        fileprivate let first: Int32
        public let length: Int32
    }

    public let blockSize: Int
    private var arena: [UInt8]
    /// The next block of a chain (or of the free list); -1 ends it.
    private var next: [Int32]
    private var freeHead: Int32
    public private(set) var freeBlocks: Int

    /// `blocks` of `blockSize` bytes, allocated now.
    public init(blocks: Int, blockSize: Int = 512) {
        precondition(blocks > 0 && blocks < Int(Int32.max) && blockSize > 0, "message store size out of range")
        self.blockSize = blockSize
        arena = Array(repeating: 0, count: blocks * blockSize)
        next = (0..<blocks).map { $0 + 1 < blocks ? Int32($0 + 1) : -1 }
        freeHead = 0
        freeBlocks = blocks
    }

    public var capacityBlocks: Int { next.count }

    /// Blocks a message of `length` bytes needs.
    public func blocksNeeded(for length: Int) -> Int { max(1, (length + blockSize - 1) / blockSize) }

    /// Stores a copy of `bytes`; nil when the free blocks cannot hold it (nothing is taken then).
    public mutating func store(_ bytes: [UInt8]) -> Handle? {
        let needed = blocksNeeded(for: bytes.count)
        guard needed <= freeBlocks, bytes.count < Int(Int32.max) else { return nil }
        let first = freeHead
        var block = first
        var copied = 0
        for index in 0..<needed {
            let start = Int(block) * blockSize
            let count = min(blockSize, bytes.count - copied)
            arena.replaceSubrange(start..<(start + count), with: bytes[copied..<(copied + count)])
            copied += count
            if index == needed - 1 {
                freeHead = next[Int(block)]
                next[Int(block)] = -1
            } else {
                block = next[Int(block)]
            }
        }
        freeBlocks -= needed
        return Handle(first: first, length: Int32(bytes.count))
    }

    /// Appends the stored message to `output` (reserve its capacity once, and this allocates nothing).
    public func append(_ handle: Handle, to output: inout [UInt8]) {
        var block = handle.first
        var remaining = Int(handle.length)
        while remaining > 0 && block >= 0 {
            let start = Int(block) * blockSize
            let count = min(blockSize, remaining)
            output.append(contentsOf: arena[start..<(start + count)])
            remaining -= count
            block = next[Int(block)]
        }
    }

    /// Gives the message's blocks back. Releasing a handle twice corrupts the store: the owner (one transaction
    /// slot) holds the only copy and clears it when it releases.
    public mutating func release(_ handle: Handle) {
        var block = handle.first
        var released = 0
        while block >= 0 {
            let following = next[Int(block)]
            next[Int(block)] = freeHead
            freeHead = block
            released += 1
            block = following
        }
        freeBlocks += released
    }
}
