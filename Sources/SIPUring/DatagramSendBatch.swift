public import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// Outgoing datagrams collected while a batch of received ones is handled, then sent with one `sendmmsg`
/// (the fallback path's counterpart of the io_uring send slots). Storage is allocated once and reused: fixed
/// blocks, like ``DatagramBatch``'s, so queueing a datagram and sending the batch touch no array (each array
/// access cost a uniqueness check or a retain of its buffer, several a datagram).
public final class DatagramSendBatch {
    /// The datagrams' bytes back to back.
    private var data: ScratchBytes
    private let offsets: UnsafeMutablePointer<UInt32>
    private let lengths: UnsafeMutablePointer<UInt32>
    private let destinations: UnsafeMutablePointer<sockaddr_storage>
    private let destinationLengths: UnsafeMutablePointer<UInt32>
    private var queued = 0
    private let capacity: Int

    public init(capacity: Int = 32) {
        precondition(capacity > 0 && capacity <= Int(CSIP_UDP_BATCH_MAX))
        self.capacity = capacity
        data = ScratchBytes(capacity: capacity * 2_048)
        offsets = .allocate(capacity: capacity)
        lengths = .allocate(capacity: capacity)
        destinations = .allocate(capacity: capacity)
        destinationLengths = .allocate(capacity: capacity)
        offsets.initialize(repeating: 0, count: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        destinations.initialize(repeating: sockaddr_storage(), count: capacity)
        destinationLengths.initialize(repeating: 0, count: capacity)
    }

    deinit {
        offsets.deallocate()
        lengths.deallocate()
        destinations.deallocate()
        destinationLengths.deallocate()
    }

    public var isEmpty: Bool { queued == 0 }

    /// Queues an array's bytes, as below.
    @discardableResult
    public func append(_ bytes: [UInt8], to destination: EndpointAddress, on socket: UDPSocket) -> Int {
        bytes.withPacketBytes { append($0, to: destination, on: socket) }
    }

    /// Queues `bytes` (copied) for `destination`; flushes first when the batch is full. Returns the number of
    /// datagrams the kernel refused while flushing (0 normally).
    @discardableResult
    public func append(_ bytes: PacketBytes, to destination: EndpointAddress, on socket: UDPSocket) -> Int {
        var refused = 0
        if queued == capacity { refused = flush(on: socket) }
        offsets[queued] = UInt32(data.count)
        lengths[queued] = UInt32(bytes.count)
        bytes.append(bytes.all, to: &data)
        destinationLengths[queued] = UInt32(destination.write(to: &destinations[queued]))
        queued += 1
        return refused
    }

    /// Sends everything queued with one system call; returns how many datagrams the kernel refused.
    @discardableResult
    public func flush(on socket: UDPSocket) -> Int {
        guard queued > 0 else { return 0 }
        let count = queued
        let sent = data.withUnsafeBytes { data in
            csip_udp_send_batch(socket.descriptor, data.baseAddress?.assumingMemoryBound(to: UInt8.self), offsets,
                                lengths, destinations, destinationLengths, UInt32(count))
        }
        data.truncate(to: 0)
        queued = 0
        return count - max(Int(sent), 0)
    }
}

/// An epoll instance watching a worker's sockets for input (the fallback path's wait).
public final class ReadinessPoll {
    private let descriptor: Int32
    private var events = [epoll_event](repeating: epoll_event(), count: 8)

    /// Watches `sockets`; the ready mask of ``wait(timeoutMilliseconds:)`` has bit i for `sockets[i]`.
    public init(_ sockets: [UDPSocket]) throws(SystemCallError) {
        let fd = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard fd >= 0 else { throw SystemCallError(call: "epoll_create1", errno: errno) }
        for (index, socket) in sockets.enumerated() {
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = UInt64(index)
            guard epoll_ctl(fd, EPOLL_CTL_ADD, socket.descriptor, &event) == 0 else {
                let error = errno
                close(fd)
                throw SystemCallError(call: "epoll_ctl", errno: error)
            }
        }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Watches one more socket, reported as bit `bit` (0...63) of the ready mask.
    public func add(_ socket: UDPSocket, bit: Int) throws(SystemCallError) {
        guard (0..<64).contains(bit) else { throw SystemCallError(call: "epoll_ctl (bit \(bit))", errno: EINVAL) }
        var event = epoll_event()
        event.events = EPOLLIN.rawValue
        event.data.u64 = UInt64(bit)
        guard epoll_ctl(descriptor, EPOLL_CTL_ADD, socket.descriptor, &event) == 0 else {
            throw SystemCallError(call: "epoll_ctl", errno: errno)
        }
    }

    /// Stops watching `socket` (a successor reads it now).
    public func remove(_ socket: UDPSocket) {
        _ = epoll_ctl(descriptor, EPOLL_CTL_DEL, socket.descriptor, nil)
    }

    /// Waits up to `timeoutMilliseconds`; returns the ready sockets as a bit mask (0 on timeout).
    public func wait(timeoutMilliseconds: Int32) -> UInt64 {
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(descriptor, $0.baseAddress, Int32($0.count), timeoutMilliseconds)
        }
        var mask: UInt64 = 0
        for i in 0..<max(Int(count), 0) { mask |= 1 << events[i].data.u64 }
        return mask
    }
}
