import SIPBytes
public import SIPCapture
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// One worker's way out to the HEP collector: a UDP socket (one `sendmmsg` per flush) or a TCP connection
/// (non-blocking writes; a write that does not fit waits for the next flush, a broken connection is dialled again
/// with backoff). Never blocks the worker: what cannot leave stays queued, and the queue drops its oldest.
public final class CaptureLink {
    public let target: CaptureTarget
    private var descriptor: Int32 = -1
    /// The unwritten rest of a packet the TCP connection took only part of, and how much of it went since.
    private var partial: [UInt8] = []
    private var partialWritten = 0
    private var reconnectAt: UInt64 = 0
    private var backoffMilliseconds: UInt64 = CaptureLink.minimumBackoffMilliseconds
    private var destination = sockaddr_storage()
    private let destinationLength: socklen_t
    /// The same destination for each datagram of a batch (sendmmsg names one per message).
    private var destinations: [sockaddr_storage]
    private var destinationLengths: [UInt32]
    /// Captures lost because the connection broke mid-packet or the kernel refused them.
    public private(set) var lost = 0
    public private(set) var sent = 0

    static let minimumBackoffMilliseconds: UInt64 = 500
    static let maximumBackoffMilliseconds: UInt64 = 30_000
    static let batch = Int(CSIP_UDP_BATCH_MAX)

    public init(target: CaptureTarget) throws(SystemCallError) {
        self.target = target
        var storage = sockaddr_storage()
        destinationLength = target.address.write(to: &storage)
        destination = storage
        destinations = Array(repeating: storage, count: Self.batch)
        destinationLengths = Array(repeating: UInt32(destinationLength), count: Self.batch)
        if target.transport == .udp {
            let any = target.address.family == .ipv4
                ? EndpointAddress.parse("0.0.0.0", port: 0)! : EndpointAddress.parse("::", port: 0)!
            let fd = socket(any.family == .ipv4 ? AF_INET : AF_INET6,
                            Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
            _ = try bindOrClose(fd, to: any)
            descriptor = fd
        }
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Sends what the queue holds, as far as the socket takes it now.
    public func flush(_ queue: inout CaptureQueue, now: UInt64) {
        guard !queue.isEmpty else { return }
        switch target.transport {
        case .udp: flushDatagrams(&queue)
        case .tcp: flushStream(&queue, now: now)
        }
    }

    private func flushDatagrams(_ queue: inout CaptureQueue) {
        while !queue.isEmpty {
            let count = min(queue.count, Self.batch)
            let head = queue.head
            let result = queue.bytes.withUnsafeBufferPointer { data in
                queue.offsets.withUnsafeBufferPointer { offsets in
                    queue.lengths.withUnsafeBufferPointer { lengths in
                        destinations.withUnsafeBufferPointer { destinations in
                            destinationLengths.withUnsafeBufferPointer { destinationLengths in
                                csip_udp_send_batch(descriptor, data.baseAddress, offsets.baseAddress! + head,
                                                    lengths.baseAddress! + head, destinations.baseAddress,
                                                    destinationLengths.baseAddress, UInt32(count))
                            }
                        }
                    }
                }
            }
            if result < 0 {
                // Refused outright (no route, message too long): these are lost, the next ones may pass.
                queue.drop(1)
                lost += 1
                continue
            }
            sent += Int(result)
            queue.consume(Int(result))
            if Int(result) < count { return }  // the socket buffer is full: the rest waits for the next flush
        }
    }

    private func flushStream(_ queue: inout CaptureQueue, now: UInt64) {
        if descriptor < 0 {
            guard now >= reconnectAt else { return }
            connect(now: now)
            guard descriptor >= 0 else { return }
        }
        // The rest of a packet the connection took only part of goes first: the stream must stay whole.
        while partialWritten < partial.count {
            let written = partial.withUnsafeBufferPointer { data in
                Glibc.send(descriptor, data.baseAddress! + partialWritten, data.count - partialWritten,
                           Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            guard written >= 0 else {
                handleWriteError(now: now)
                return
            }
            partialWritten += written
            if partialWritten == partial.count {
                partial.removeAll(keepingCapacity: true)
                partialWritten = 0
                sent += 1
            }
        }
        // The queued packets lie back to back: one write takes as many as the socket has room for.
        while !queue.isEmpty {
            let start = Int(queue.offsets[queue.head])
            let end = queue.bytes.count
            let written = queue.bytes.withUnsafeBufferPointer { data in
                Glibc.send(descriptor, data.baseAddress! + start, end - start, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            }
            guard written >= 0 else {
                handleWriteError(now: now)
                return
            }
            backoffMilliseconds = Self.minimumBackoffMilliseconds
            var taken = 0
            while !queue.isEmpty {
                let length = Int(queue.lengths[queue.head])
                if taken + length <= written {
                    taken += length
                    queue.consume(1)
                    sent += 1
                    continue
                }
                if taken < written {
                    // Taken in part: the rest leaves the queue (which may drop its oldest) for the link's own buffer.
                    let packetStart = Int(queue.offsets[queue.head])
                    partial.append(contentsOf: queue.bytes[(packetStart + written - taken)..<(packetStart + length)])
                    partialWritten = 0
                    queue.consume(1)
                }
                return
            }
        }
    }

    private func handleWriteError(now: UInt64) {
        let error = Glibc.errno
        if error == EAGAIN || error == EWOULDBLOCK || error == ENOTCONN || error == EINTR { return }
        disconnect(now: now)
    }

    private func connect(now: UInt64) {
        let fd = socket(target.address.family == .ipv4 ? AF_INET : AF_INET6,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            scheduleReconnect(now: now)
            return
        }
        let result = withUnsafePointer(to: &destination) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, destinationLength) }
        }
        guard result == 0 || Glibc.errno == EINPROGRESS else {
            Glibc.close(fd)
            scheduleReconnect(now: now)
            return
        }
        _ = setNoDelay(fd)
        descriptor = fd
    }

    /// The connection broke: a packet cut in half is lost (the collector cannot resynchronise on it anyway).
    private func disconnect(now: UInt64) {
        Glibc.close(descriptor)
        descriptor = -1
        if !partial.isEmpty {
            partial.removeAll(keepingCapacity: true)
            partialWritten = 0
            lost += 1
        }
        scheduleReconnect(now: now)
    }

    private func scheduleReconnect(now: UInt64) {
        reconnectAt = now + backoffMilliseconds
        backoffMilliseconds = min(backoffMilliseconds * 2, Self.maximumBackoffMilliseconds)
    }
}
