/// Encoded captures waiting to leave one worker: a FIFO in one preallocated byte array, bounded in bytes. When a
/// new capture does not fit, the oldest are dropped (and counted): a slow or absent collector costs captures,
/// never the worker's time or memory, and never SIP traffic.
public struct CaptureQueue {
    public let capacityBytes: Int
    /// The packets, back to back from `offsets[head]`.
    public private(set) var bytes: [UInt8]
    /// Start and length of each packet in `bytes`; entries before `head` are already sent or dropped.
    public private(set) var offsets: [UInt32] = []
    public private(set) var lengths: [UInt32] = []
    public private(set) var head = 0
    /// Captures dropped because the queue was full, since the start.
    public private(set) var dropped = 0

    public init(capacityBytes: Int) {
        precondition(capacityBytes > 0)
        self.capacityBytes = capacityBytes
        bytes = []
        bytes.reserveCapacity(capacityBytes)
    }

    public var count: Int { offsets.count - head }
    public var isEmpty: Bool { head == offsets.count }

    /// Appends a capture of `length` bytes written by `encode` (which must append exactly that many). A capture
    /// larger than the whole queue is dropped at once.
    public mutating func append(length: Int, _ encode: (inout [UInt8]) -> Void) {
        guard length <= capacityBytes else {
            dropped += 1
            return
        }
        if bytes.count + length > capacityBytes {
            compact()
            while bytes.count + length > capacityBytes {
                drop(1)
                compact()
            }
        }
        offsets.append(UInt32(bytes.count))
        lengths.append(UInt32(length))
        let before = bytes.count
        encode(&bytes)
        precondition(bytes.count - before == length, "capture encoder wrote a different length than it announced")
    }

    /// The pending packets were sent (the first `count` of them).
    public mutating func consume(_ count: Int) {
        head += min(count, self.count)
        if isEmpty { reset() }
    }

    /// Drops the oldest `count` pending packets, counting them.
    public mutating func drop(_ count: Int) {
        let taken = min(count, self.count)
        dropped += taken
        head += taken
        if isEmpty { reset() }
    }

    private mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        offsets.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true)
        head = 0
    }

    /// Moves the pending packets to the front of the storage.
    private mutating func compact() {
        guard head > 0 else { return }
        if isEmpty {
            reset()
            return
        }
        let start = Int(offsets[head])
        bytes.removeSubrange(0..<start)
        offsets.removeSubrange(0..<head)
        lengths.removeSubrange(0..<head)
        for index in offsets.indices { offsets[index] -= UInt32(start) }
        head = 0
    }
}
