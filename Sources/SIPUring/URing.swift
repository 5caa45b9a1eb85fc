public import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// Sizes of one io_uring. Defaults suit one worker of an edge proxy.
public struct URingOptions: Sendable {
    /// Submission queue entries. Default: 256.
    public var entries: UInt32 = 256
    /// Receive buffers lent to the kernel (a power of two). Default: 128.
    public var receiveBuffers: UInt32 = 128
    /// Largest datagram payload a receive buffer holds; larger ones arrive truncated and are dropped. Default: 65,536.
    public var receiveBufferSize: UInt32 = 65_536
    /// Send slots (sends in flight). Default: 256.
    public var sendSlots: UInt32 = 256
    /// Largest datagram sent through the ring; larger ones go through `sendto`. Default: 8,192.
    public var sendSlotSize: UInt32 = 8_192
    /// Under load, how long a worker may wait for more completions before handling those it has, in
    /// microseconds: fewer wake-ups (CPU) against at most this much added latency. 0 handles every completion at
    /// once. An idle worker always wakes on the first packet. Default: 0 (lowest latency).
    public var batchWaitMicroseconds: UInt32 = 0
    /// Completions that end a batch wait early. Default: 32.
    public var batchSize: UInt32 = 32

    public init() {}
}

/// One completed operation, decoded by the C glue.
public struct URingEvent {
    public enum Kind: Sendable, Equatable {
        case datagram
        case invalidDatagram
        case outOfBuffers
        case receiveError
        case sendDone
    }

    public let kind: Kind
    /// The tag the receive or send was queued with (which socket).
    public let socketTag: UInt32
    /// Bytes, or -errno.
    public let result: Int32
    /// The multishot receive ended: arm it again.
    public let needsRearm: Bool
    public let truncated: Bool
    /// The datagram's bytes: valid until ``URing/recycle(_:)`` is called for this event.
    public let payload: PacketBytes?
    public let source: EndpointAddress?
    let bufferID: UInt16?
}

/// A worker's io_uring: multishot receive into provided buffers, batched sends. Not thread-safe: one owner.
///
/// Receive buffers are lent by the kernel: every event that carries one must be recycled exactly once, after its
/// payload is no longer used (``recycle(_:)``); otherwise the ring runs out and reports `outOfBuffers`.
public final class URing {
    private let handle: OpaquePointer
    private let events: UnsafeMutablePointer<csip_uring_event>
    private let eventCapacity: Int
    public private(set) var eventCount = 0

    /// Creates the ring. Throws when io_uring is unavailable (old kernel, seccomp, `kernel.io_uring_disabled`).
    public init(options: URingOptions = URingOptions(), eventCapacity: Int = 128) throws(SystemCallError) {
        var cOptions = csip_uring_options(entries: options.entries, receive_buffers: options.receiveBuffers,
                                          receive_buffer_size: options.receiveBufferSize,
                                          send_slots: options.sendSlots, send_slot_size: options.sendSlotSize)
        var ring: OpaquePointer?
        let status = csip_uring_create(&ring, &cOptions)
        guard status == 0, let ring else { throw SystemCallError(call: "io_uring setup", errno: -status) }
        handle = ring
        self.eventCapacity = eventCapacity
        events = .allocate(capacity: eventCapacity)
    }

    deinit {
        csip_uring_destroy(handle)
        events.deallocate()
    }

    /// Queues a multishot receive on `socket`; its datagrams come back with `tag`.
    public func armReceive(on socket: UDPSocket, tag: UInt32) throws(SystemCallError) {
        let status = csip_uring_arm_receive(handle, socket.descriptor, tag)
        guard status == 0 else { throw SystemCallError(call: "io_uring recvmsg", errno: -status) }
    }

    /// Queues `bytes` for sending to `destination`; it leaves with the next ``wait(timeoutMilliseconds:)``.
    /// Returns false when the ring cannot take it (too large, no free slot): send it another way.
    public func send(_ bytes: [UInt8], on socket: UDPSocket, tag: UInt32, to destination: EndpointAddress) -> Bool {
        var storage = sockaddr_storage()
        let length = destination.write(to: &storage)
        let status = bytes.withUnsafeBufferPointer {
            csip_uring_send(handle, socket.descriptor, tag, $0.baseAddress, $0.count, &storage, UInt32(length))
        }
        return status == 0
    }

    /// Submits queued work and waits until `completions` are ready or `timeoutMicroseconds` pass; returns how many
    /// events arrived (possibly fewer than asked, or none).
    public func wait(completions: UInt32 = 1, timeoutMicroseconds: UInt32) -> Int {
        let count = csip_uring_wait(handle, events, UInt32(eventCapacity), completions, timeoutMicroseconds)
        eventCount = max(Int(count), 0)
        return eventCount
    }

    /// Event `index` of the last wait.
    public func event(_ index: Int) -> URingEvent {
        precondition(index < eventCount, "event index out of range")
        let raw = events[index]
        let kind: URingEvent.Kind
        switch Int32(raw.kind) {
        case Int32(CSIP_EVENT_DATAGRAM): kind = .datagram
        case Int32(CSIP_EVENT_DATAGRAM_INVALID): kind = .invalidDatagram
        case Int32(CSIP_EVENT_OUT_OF_BUFFERS): kind = .outOfBuffers
        case Int32(CSIP_EVENT_SEND_DONE): kind = .sendDone
        default: kind = .receiveError
        }
        var payload: PacketBytes?
        var source: EndpointAddress?
        if kind == .datagram, let start = raw.payload {
            payload = PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(start: start, count: Int(raw.payload_length)))
            source = EndpointAddress(storage: raw.source)
        }
        return URingEvent(kind: kind, socketTag: raw.socket_tag, result: raw.result, needsRearm: raw.needs_rearm != 0,
                          truncated: raw.truncated != 0, payload: payload, source: source,
                          bufferID: raw.has_buffer != 0 ? raw.buffer_id : nil)
    }

    /// Returns the event's receive buffer to the kernel. Call once per event, after its payload is done with.
    public func recycle(_ event: URingEvent) {
        if let bufferID = event.bufferID { csip_uring_recycle(handle, bufferID) }
    }
}
