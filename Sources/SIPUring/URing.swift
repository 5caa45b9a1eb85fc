public import SIPBytes
public import SIPSettings
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// One completed operation, decoded by the C glue.
public struct URingEvent {
    public enum Kind: Sendable, Equatable {
        case datagram
        case invalidDatagram
        case outOfBuffers
        case receiveError
        /// A ``URing/send(_:on:tag:to:)`` failed: `result` is -errno. One that succeeds reports nothing
        /// (``URing/sendsInFlight`` counts those not completed yet).
        case sendFailed
        /// A connection on a listener armed with ``URing/armAccept(on:tag:)``: `result` is its descriptor (the
        /// caller owns it: non-blocking, close-on-exec) or -errno, `source` the peer, `socketTag` the listener's.
        case accepted
        /// Bytes of a connection armed with ``URing/armStreamReceive(descriptor:key:)``, in order. `result` > 0:
        /// `payload` holds them. 0: the peer closed. < 0: -errno (`ENOBUFS`: recycle and re-arm; `ECANCELED`: after
        /// ``URing/cancelStream(descriptor:)``).
        case streamData
        /// A ``URing/sendStream(_:descriptor:key:)`` finished: `result` is the full length, or -errno.
        case streamSent
        /// A ``URing/connect(descriptor:key:to:)`` finished: `result` 0, or -errno (`ECONNREFUSED`, ...).
        case connected
    }

    public let kind: Kind
    /// The tag the receive, send or accept was queued with (which socket).
    public let socketTag: UInt32
    /// Stream events (`.streamData`, `.streamSent`, `.connected`): the key given when the request was queued,
    /// exactly. Zero otherwise.
    public let streamKey: UInt64
    /// Bytes, or -errno; the new descriptor for `.accepted`.
    public let result: Int32
    /// The multishot receive (or accept) ended: arm it again if the socket is still wanted.
    public let needsRearm: Bool
    public let truncated: Bool
    /// The datagram's or stream chunk's bytes: valid until ``URing/recycle(_:)`` is called for this event.
    public let payload: PacketBytes?
    /// The datagram's source, or the accepted connection's peer.
    public let source: EndpointAddress?
    let bufferID: UInt16?
}

/// A worker's io_uring: multishot receive into provided buffers, batched sends, TCP streams (accept, receive,
/// send, connect). Not thread-safe: one owner.
///
/// Receive buffers are lent by the kernel: every event that carries one must be recycled exactly once, after its
/// payload is no longer used (``recycle(_:)``); otherwise the ring runs out and reports `outOfBuffers` (datagrams)
/// or `.streamData` with -ENOBUFS (streams). Datagrams and streams share the buffers.
///
/// Streams: the caller names each connection with a 64-bit key (e.g. slot index and generation) that every event
/// of that connection carries back. The ring never closes a descriptor. To drop a connection:
/// ``cancelStream(descriptor:)`` then ``closeStream(_:)``; events for its key may still arrive afterwards (some
/// with -ECANCELED): ignore them by key, but recycle them all.
public final class URing {
    private let handle: OpaquePointer
    private let events: UnsafeMutablePointer<csip_uring_event>
    private let eventCapacity: Int
    public private(set) var eventCount = 0

    /// Creates the ring. Throws when io_uring is unavailable (old kernel, seccomp, `kernel.io_uring_disabled`).
    public init(options: URingOptions = URingOptions(), eventCapacity: Int = 128) throws(SystemCallError) {
        var cOptions = csip_uring_options(entries: options.entries, receive_buffers: options.receiveBuffers,
                                          receive_buffer_size: options.receiveBufferSize,
                                          send_slots: options.sendSlots, send_slot_size: options.sendSlotSize,
                                          max_stream_requests: options.maxStreamRequests,
                                          flags: options.singleShotStreamReceive
                                              ? CSIP_URING_SINGLE_SHOT_STREAM_RECEIVE : 0)
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

    /// Queues an array's bytes, as below.
    public func send(_ bytes: [UInt8], on socket: UDPSocket, tag: UInt32, to destination: EndpointAddress) -> Bool {
        bytes.withPacketBytes { send($0, on: socket, tag: tag, to: destination) }
    }

    /// Queues `bytes` (copied into a send slot) for sending to `destination`; it leaves with the next
    /// ``wait(timeoutMilliseconds:)``. Returns false when the ring cannot take it (too large, no free slot): send it
    /// another way.
    public func send(_ bytes: PacketBytes, on socket: UDPSocket, tag: UInt32, to destination: EndpointAddress) -> Bool {
        var storage = sockaddr_storage()
        let length = destination.write(to: &storage)
        let status = bytes.withUnsafeBytes {
            csip_uring_send(handle, socket.descriptor, tag, $0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count,
                            &storage, UInt32(length))
        }
        return status == 0
    }

    // MARK: streams

    /// Queues a multishot accept on `listener`; each connection comes back as `.accepted` with `tag` (low 24 bits).
    /// Stop it with ``cancelStream(descriptor:)`` on the listener's descriptor.
    public func armAccept(on listener: StreamListener, tag: UInt32) throws(SystemCallError) {
        let status = csip_uring_arm_accept(handle, listener.descriptor, tag)
        guard status == 0 else { throw SystemCallError(call: "io_uring accept", errno: -status) }
    }

    /// Queues a receive on connection `descriptor`; its bytes come back as `.streamData` events with `key`. Arm
    /// once per connection, and again after an event with `needsRearm` while the connection is wanted.
    public func armStreamReceive(descriptor: Int32, key: UInt64) throws(SystemCallError) {
        let status = csip_uring_arm_stream_receive(handle, descriptor, key)
        guard status == 0 else { throw SystemCallError(call: "io_uring recv", errno: -status) }
    }

    /// Copies `bytes` (at most 1 MiB) and queues them for sending on connection `descriptor`; one `.streamSent`
    /// event with `key` reports the whole send (short sends are continued inside). Returns false when not queued
    /// (too long, too many requests in flight, queue full).
    ///
    /// At most one stream send may be in flight per descriptor: queue further bytes and send them after the
    /// `.streamSent` event, or bytes of two sends could interleave.
    public func sendStream(_ bytes: ArraySlice<UInt8>, descriptor: Int32, key: UInt64) -> Bool {
        let status = bytes.withUnsafeBufferPointer {
            csip_uring_stream_send(handle, descriptor, key, $0.baseAddress, $0.count)
        }
        return status == 0
    }

    /// Queues a connect of non-blocking stream socket `descriptor` (see ``openStreamSocket(family:)``) to
    /// `destination`; `.connected` with `key` reports the outcome.
    public func connect(descriptor: Int32, key: UInt64, to destination: EndpointAddress) throws(SystemCallError) {
        var storage = sockaddr_storage()
        let length = destination.write(to: &storage)
        let status = csip_uring_connect(handle, descriptor, key, &storage, UInt32(length))
        guard status == 0 else { throw SystemCallError(call: "io_uring connect", errno: -status) }
    }

    /// Cancels every request on `descriptor` (receive, send, connect, accept) at once, so it may be closed right
    /// after. Events already under way still arrive, some with -ECANCELED. Returns false when the cancel could
    /// not be submitted; the socket was then shut down instead, which ends its requests too: closing stays safe.
    @discardableResult
    public func cancelStream(descriptor: Int32) -> Bool {
        csip_uring_cancel_stream(handle, descriptor) == 0
    }

    /// Cancels the multishot datagram receive armed with `tag` (``armReceive(on:tag:)``) and nothing else: the
    /// socket's sends in flight continue. Completions already queued still arrive; the receive then ends without
    /// asking to be armed again... as far as the caller is concerned: its last event has `needsRearm` set, which
    /// a caller that cancelled must ignore.
    public func cancelReceive(tag: UInt32) throws(SystemCallError) {
        let status = csip_uring_cancel_armed(handle, 0, tag)
        guard status == 0 else { throw SystemCallError(call: "io_uring cancel receive", errno: -status) }
    }

    /// Cancels the multishot accept armed with `tag` (``armAccept(on:tag:)``): connections still queued on the
    /// listener stay there for whoever else holds it.
    public func cancelAccept(tag: UInt32) throws(SystemCallError) {
        let status = csip_uring_cancel_armed(handle, 1, tag)
        guard status == 0 else { throw SystemCallError(call: "io_uring cancel accept", errno: -status) }
    }

    /// Submits queued work and waits until `completions` are ready or `timeoutMicroseconds` pass; returns how many
    /// events arrived (possibly fewer than asked, or none).
    public func wait(completions: UInt32 = 1, timeoutMicroseconds: UInt32) -> Int {
        let count = csip_uring_wait(handle, events, UInt32(eventCapacity), completions, timeoutMicroseconds)
        eventCount = max(Int(count), 0)
        return eventCount
    }

    /// Datagram sends queued by ``send(_:on:tag:to:)`` whose completion has not been reaped by a ``wait`` yet.
    public var sendsInFlight: Int { Int(csip_uring_sends_in_flight(handle)) }

    /// Event `index` of the last wait.
    public func event(_ index: Int) -> URingEvent {
        precondition(index < eventCount, "event index out of range")
        let raw = events[index]
        let kind: URingEvent.Kind
        switch Int32(raw.kind) {
        case Int32(CSIP_EVENT_DATAGRAM): kind = .datagram
        case Int32(CSIP_EVENT_DATAGRAM_INVALID): kind = .invalidDatagram
        case Int32(CSIP_EVENT_OUT_OF_BUFFERS): kind = .outOfBuffers
        case Int32(CSIP_EVENT_SEND_FAILED): kind = .sendFailed
        case Int32(CSIP_EVENT_ACCEPTED): kind = .accepted
        case Int32(CSIP_EVENT_STREAM_DATA): kind = .streamData
        case Int32(CSIP_EVENT_STREAM_SENT): kind = .streamSent
        case Int32(CSIP_EVENT_CONNECTED): kind = .connected
        default: kind = .receiveError
        }
        var payload: PacketBytes?
        var source: EndpointAddress?
        switch kind {
        case .datagram, .streamData:
            // The C glue sets payload only for a datagram or a stream chunk (result > 0) in a lent buffer.
            if let start = raw.payload {
                payload = PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(start: start,
                                                                              count: Int(raw.payload_length)))
            }
            if kind == .datagram { source = EndpointAddress(storage: raw.source) }
        case .accepted:
            if raw.source_length > 0 { source = EndpointAddress(storage: raw.source) }
        default:
            break
        }
        return URingEvent(kind: kind, socketTag: raw.socket_tag, streamKey: raw.stream_key, result: raw.result,
                          needsRearm: raw.needs_rearm != 0, truncated: raw.truncated != 0, payload: payload,
                          source: source, bufferID: raw.has_buffer != 0 ? raw.buffer_id : nil)
    }

    /// Returns the event's receive buffer to the kernel. Call once per event, after its payload is done with.
    public func recycle(_ event: URingEvent) {
        if let bufferID = event.bufferID { csip_uring_recycle(handle, bufferID) }
    }
}
