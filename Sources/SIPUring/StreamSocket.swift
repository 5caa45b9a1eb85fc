public import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket of the SIP data path, one per worker: non-blocking and close-on-exec, with SO_REUSEADDR
/// and SO_REUSEPORT so every worker binds its own on the shared port (the kernel spreads connections across them).
/// Accept through ``URing/armAccept(on:tag:)``. Closed on deinit.
///
/// Not the admin listener (``TCPListener``), which the admin thread polls with its connections.
public final class StreamListener: Sendable {
    public let descriptor: Int32
    public let localAddress: EndpointAddress

    /// Binds to `address` (port 0 picks a free one) and listens with `backlog` pending connections.
    public init(binding address: EndpointAddress, reusePort: Bool = true, backlog: Int32 = 1_024) throws(SystemCallError) {
        let fd = socket(address.family == .ipv4 ? AF_INET : AF_INET6,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
        var one: Int32 = 1
        // SO_REUSEADDR: a restarted proxy binds again while old connections sit in TIME_WAIT.
        guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0,
              !reusePort || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
        else {
            let error = Glibc.errno
            Glibc.close(fd)
            throw SystemCallError(call: "setsockopt(SO_REUSEADDR/SO_REUSEPORT)", errno: error)
        }
        localAddress = try bindOrClose(fd, to: address, transport: "tcp")
        guard listen(fd, backlog) == 0 else {
            let error = Glibc.errno
            Glibc.close(fd)
            throw SystemCallError(call: "listen(\(address))", errno: error)
        }
        descriptor = fd
    }

    /// Takes over a listening socket another process handed us: connections waiting in its queue are ours to
    /// accept.
    /// Throws (closing `fd`) when it is not a listening TCP socket bound to `expecting`'s port.
    public init(adopting fd: Int32, expecting: EndpointAddress) throws(SystemCallError) {
        localAddress = try Descriptor.adopt(fd, type: Int32(SOCK_STREAM.rawValue), listening: true, expecting: expecting)
        descriptor = fd
    }

    deinit {
        Glibc.close(descriptor)
    }

    /// Makes the SO_REUSEPORT group this listener belongs to pick the listener by the client's address modulo
    /// `groupSize` (in listen order), so one client IP always reaches the same worker. Attach once, after every
    /// listener of the group is created. IPv4 hashes the whole address, IPv6 its low 32 bits.
    public func attachSourceSteering(groupSize: Int) throws(SystemCallError) {
        let status = csip_attach_reuseport_steering(descriptor, localAddress.family == .ipv6 ? 1 : 0,
                                                    UInt32(groupSize))
        guard status == 0 else { throw SystemCallError(call: "setsockopt(SO_ATTACH_REUSEPORT_CBPF)", errno: -status) }
    }
}

/// A new non-blocking, close-on-exec TCP socket for an outbound connection (``URing/connect(descriptor:key:to:)``).
/// The caller owns it: ``closeStream(_:)`` when done.
public func openStreamSocket(family: EndpointAddress.Family) throws(SystemCallError) -> Int32 {
    let fd = socket(family == .ipv4 ? AF_INET : AF_INET6,
                    Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
    return fd
}

/// Closes a connection's descriptor (accepted or opened). If a ring has requests on it, call
/// ``URing/cancelStream(descriptor:)`` first: the ring's requests keep the socket alive past a bare close.
public func closeStream(_ fd: Int32) {
    // close(2) releases the descriptor even when it reports an error (EINTR, EIO): never retry it.
    _ = Glibc.close(fd)
}

/// Turns off Nagle's algorithm on `fd` (SIP messages are sent whole; waiting for more only adds latency).
/// Returns false when the socket refused (not TCP, closed).
@discardableResult
public func setNoDelay(_ fd: Int32) -> Bool {
    var one: Int32 = 1
    return setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0
}
