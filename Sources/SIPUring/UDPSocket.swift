public import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: errno plus the call's name (NIO's IOError).
public struct SystemCallError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }

    /// What a failed `bind` was for (`udp 127.0.0.1:5060`), so start-up can name the listener; nil for other calls.
    public var bindTarget: String? {
        guard call.hasPrefix("bind("), call.hasSuffix(")") else { return nil }
        return String(call.dropFirst(5).dropLast())
    }
}

/// A non-blocking UDP socket owned by one worker. Closed on deinit.
public final class UDPSocket {
    public let descriptor: Int32
    public let localAddress: EndpointAddress

    /// Binds a socket to `address` (port 0 picks a free one). `reusePort` lets every worker bind the same public
    /// port; the kernel spreads datagrams across them by source address hash.
    public init(binding address: EndpointAddress, reusePort: Bool, receiveBufferBytes: Int32 = 4 << 20) throws(SystemCallError) {
        let family = address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
        var one: Int32 = 1
        var bufferSize = receiveBufferBytes
        if reusePort, setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            let error = Glibc.errno
            close(fd)
            throw SystemCallError(call: "setsockopt(SO_REUSEPORT)", errno: error)
        }
        // A larger receive buffer absorbs bursts; failure only means the system default stays.
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufferSize, socklen_t(MemoryLayout<Int32>.size))
        localAddress = try bindOrClose(fd, to: address, transport: "udp")
        descriptor = fd
    }

    /// Takes over a bound UDP socket another process handed us (a zero-downtime restart): same socket, same
    /// SO_REUSEPORT group, same queued datagrams. Closed on deinit like one we bound.
    /// Throws (closing `fd`) when it is not a UDP socket bound to `expecting`'s port (nil: any port).
    public init(adopting fd: Int32, expecting: EndpointAddress?) throws(SystemCallError) {
        localAddress = try Descriptor.adopt(fd, type: Int32(SOCK_DGRAM.rawValue), listening: false, expecting: expecting)
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Sends one datagram (an array's bytes), as below.
    @discardableResult
    public func send(_ bytes: [UInt8], to destination: EndpointAddress) -> Bool {
        bytes.withPacketBytes { send($0, to: destination) }
    }

    /// Sends one datagram. Returns false when the kernel refused it (buffer full, unreachable): UDP is lossy and
    /// the sender retransmits, so the caller counts the drop instead of retrying.
    @discardableResult
    public func send(_ bytes: PacketBytes, to destination: EndpointAddress) -> Bool {
        var storage = sockaddr_storage()
        let length = destination.write(to: &storage)
        // ECONNREFUSED: an earlier datagram's ICMP error (IP_RECVERR) reported here; this one was not sent.
        for _ in 0..<4 {
            let sent = bytes.withUnsafeBytes { payload in
                withUnsafePointer(to: &storage) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(descriptor, payload.baseAddress, payload.count, Int32(MSG_DONTWAIT), $0, length)
                    }
                }
            }
            if sent >= 0 || Glibc.errno != ECONNREFUSED { return sent == bytes.count }
        }
        return false
    }
}

extension UDPSocket {
    /// Queues ICMP errors for this socket's datagrams (IP_RECVERR), so ``takeUnreachableDestinations()`` can say
    /// which destination refused: the passive health check of UDP upstreams. A receive then fails once
    /// (ECONNREFUSED) per error: read the queue before receiving again.
    public func reportUnreachableDestinations() throws(SystemCallError) {
        let result = csip_udp_enable_errors(descriptor, localAddress.family == .ipv6 ? 1 : 0)
        guard result == 0 else { throw SystemCallError(call: "setsockopt(IP_RECVERR)", errno: -result) }
    }

    /// Empties the socket's error queue (at most `limit` entries per call, so a storm cannot hold the caller) and
    /// returns the destinations that answered ICMP port unreachable.
    public func takeUnreachableDestinations(limit: Int = 64) -> [EndpointAddress] {
        var refused: [EndpointAddress] = []
        var destination = sockaddr_storage()
        for _ in 0..<limit {
            let result = csip_udp_take_error(descriptor, &destination)
            guard result > 0 else { break }
            if result == 1, let address = EndpointAddress(storage: destination) { refused.append(address) }
        }
        return refused
    }
}

/// Receives up to `capacity` datagrams per system call (`recvmmsg`) into buffers allocated once.
public final class DatagramBatch {
    private let bufferSize: Int
    private let buffers: UnsafeMutablePointer<UInt8>
    private let sources: UnsafeMutablePointer<sockaddr_storage>
    private let info: UnsafeMutablePointer<csip_datagram_info>
    /// The recvmmsg headers pointing at `buffers` and `sources`, built once (C).
    private let receiver: OpaquePointer
    public private(set) var count = 0

    public init(capacity: Int = 32, bufferSize: Int = 65_536) {
        precondition(capacity > 0 && capacity <= Int(CSIP_UDP_BATCH_MAX) && bufferSize > 0)
        self.bufferSize = bufferSize
        buffers = .allocate(capacity: capacity * bufferSize)
        sources = .allocate(capacity: capacity)
        info = .allocate(capacity: capacity)
        guard let receiver = csip_udp_receiver_create(buffers, bufferSize, UInt32(capacity), sources) else {
            fatalError("DatagramBatch: out of memory for \(capacity) receive headers")
        }
        self.receiver = receiver
    }

    deinit {
        csip_udp_receiver_destroy(receiver)
        buffers.deallocate()
        sources.deallocate()
        info.deallocate()
    }

    /// Reads what is queued on `socket` (non-blocking). Returns the number of datagrams, 0 when none.
    public func receive(from socket: UDPSocket) -> Int {
        let received = csip_udp_receive_batch(receiver, socket.descriptor, info)
        count = max(Int(received), 0)
        return count
    }

    /// True when datagram `index` was larger than its buffer (drop it: it cannot be a valid message).
    public func isTruncated(_ index: Int) -> Bool {
        precondition(index < count)
        return info[index].truncated != 0
    }

    /// Runs `body` with datagram `index`'s bytes and source. The bytes are valid only inside the closure.
    public func withDatagram<Result>(_ index: Int, _ body: (PacketBytes, EndpointAddress?) throws -> Result) rethrows -> Result {
        precondition(index < count)
        let bytes = PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(start: buffers + index * bufferSize,
                                                                         count: Int(info[index].length)))
        return try body(bytes, EndpointAddress(storage: sources[index]))
    }
}

extension EndpointAddress {
    /// Fills a sockaddr_in / sockaddr_in6 and returns its length.
    func write(to storage: inout sockaddr_storage) -> socklen_t {
        switch family {
        case .ipv4:
            return withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                    pointer.pointee = sockaddr_in()
                    pointer.pointee.sin_family = sa_family_t(AF_INET)
                    pointer.pointee.sin_port = port.bigEndian
                    pointer.pointee.sin_addr.s_addr = ipv4.bigEndian
                    return socklen_t(MemoryLayout<sockaddr_in>.size)
                }
            }
        case .ipv6:
            return withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    pointer.pointee = sockaddr_in6()
                    pointer.pointee.sin6_family = sa_family_t(AF_INET6)
                    pointer.pointee.sin6_port = port.bigEndian
                    withUnsafeMutableBytes(of: &pointer.pointee.sin6_addr) { raw in
                        raw.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                        raw.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
                    }
                    return socklen_t(MemoryLayout<sockaddr_in6>.size)
                }
            }
        }
    }

    /// Reads a sockaddr_in / sockaddr_in6.
    init?(storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            let (address, port) = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ($0.pointee.sin_addr.s_addr, $0.pointee.sin_port) }
            }
            self.init(family: .ipv4, high: UInt64(UInt32(bigEndian: address)) << 32, low: 0, port: UInt16(bigEndian: port))
        case AF_INET6:
            let (high, low, port) = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                    withUnsafeBytes(of: pointer.pointee.sin6_addr) { raw in
                        (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                         UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)),
                         UInt16(bigEndian: pointer.pointee.sin6_port))
                    }
                }
            }
            self.init(family: .ipv6, high: high, low: low, port: port)
        default:
            return nil
        }
    }
}

extension UDPSocket {
    /// Makes the SO_REUSEPORT group this socket belongs to pick sockets by source address modulo `groupSize`
    /// (one client IP, one worker). Attach once, after every socket of the group is bound.
    public func attachSourceSteering(groupSize: Int) throws(SystemCallError) {
        let status = csip_attach_reuseport_steering(descriptor, localAddress.family == .ipv6 ? 1 : 0,
                                                    UInt32(groupSize))
        guard status == 0 else { throw SystemCallError(call: "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", errno: -status) }
    }
}

/// systemd's readiness protocol (sd_notify), for `Type=notify` units.
public enum ServiceManager {
    /// Sends `state` ("READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=...") when run by systemd; returns false
    /// when not (or when the message could not be sent).
    @discardableResult
    public static func notify(_ state: String) -> Bool {
        csip_sd_notify(state) == 1
    }

    /// The watchdog interval systemd asks for (WATCHDOG_USEC), in microseconds, when it is meant for this process.
    public static var watchdogMicroseconds: UInt64? {
        guard let text = getenv("WATCHDOG_USEC"), let value = UInt64(String(cString: text)), value > 0 else { return nil }
        if let pidText = getenv("WATCHDOG_PID"), let pid = Int32(String(cString: pidText)), pid != getpid() { return nil }
        return value
    }
}

/// Binds `fd` to `address` and returns the address actually bound (the kernel's port when 0 was asked); on
/// failure closes `fd` and throws, naming `transport` with the address (see ``SystemCallError/bindTarget``).
/// Shared by every socket type here.
func bindOrClose(_ fd: Int32, to address: EndpointAddress, transport: String? = nil) throws(SystemCallError) -> EndpointAddress {
    var storage = sockaddr_storage()
    let length = address.write(to: &storage)
    let bound = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0 else {
        let error = Glibc.errno
        close(fd)
        throw SystemCallError(call: "bind(\(transport.map { "\($0) " } ?? "")\(address))", errno: error)
    }
    var local = sockaddr_storage()
    var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let named = withUnsafeMutablePointer(to: &local) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &localLength) }
    }
    guard named == 0 else {
        // Without it a port-0 socket would report port 0: a worker must not run on an address it cannot name.
        let error = Glibc.errno
        close(fd)
        throw SystemCallError(call: "getsockname", errno: error)
    }
    return EndpointAddress(storage: local) ?? address
}
