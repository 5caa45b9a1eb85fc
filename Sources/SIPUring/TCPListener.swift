public import SIPBytes
// Not used directly: once another file of this module uses SOCK_STREAM through CSIPUring (which includes
// <sys/socket.h>), the compiler attributes the constant to CSIPUring and files without this import lose it.
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket for the admin HTTP server (not the SIP data path). Non-blocking: the admin thread
/// watches it in a ``PollSet`` next to its connections and calls ``acceptConnection()`` when it is readable.
/// Closed on deinit.
public final class TCPListener: Sendable {
    public let descriptor: Int32
    public let localAddress: EndpointAddress

    /// What one accept attempt found.
    public enum AcceptResult {
        case accepted(TCPConnection)
        /// No connection is waiting (or the one that was gave up before we took it).
        case noneWaiting
        /// The process or system ran out of descriptors: the connection stays queued until one is closed.
        case outOfDescriptors
        case failed(SystemCallError)
    }

    /// `backlog` holds connections the kernel completed while the admin thread was busy: a burst of a thousand
    /// clients must not push a liveness probe into SYN retries (a second or more).
    public init(binding address: EndpointAddress, backlog: Int32 = 1_024) throws(SystemCallError) {
        let family = address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        localAddress = try bindOrClose(fd, to: address)
        guard listen(fd, backlog) == 0 else {
            let error = Glibc.errno
            close(fd)
            throw SystemCallError(call: "listen(\(address))", errno: error)
        }
        descriptor = fd
    }

    /// Takes over the admin listener a predecessor handed us (a zero-downtime restart).
    public init(adopting fd: Int32, expecting: EndpointAddress) throws(SystemCallError) {
        localAddress = try Descriptor.adopt(fd, type: Int32(SOCK_STREAM.rawValue), listening: true, expecting: expecting)
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Takes one waiting connection, non-blocking and close-on-exec, without waiting. (Glibc's Swift module does
    /// not export accept4, so the flags are set right after accept; sip-edge never forks in between.)
    public func acceptConnection() -> AcceptResult {
        let fd = Glibc.accept(descriptor, nil, nil)
        if fd >= 0 {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            return .accepted(TCPConnection(descriptor: fd))
        }
        switch Glibc.errno {
        case EAGAIN, EWOULDBLOCK, EINTR, ECONNABORTED, EPROTO: return .noneWaiting
        case EMFILE, ENFILE, ENOBUFS, ENOMEM: return .outOfDescriptors
        case let error: return .failed(SystemCallError(call: "accept", errno: error))
        }
    }
}

/// One accepted admin connection, non-blocking: the caller waits for readiness in a ``PollSet``. Closed on deinit.
public final class TCPConnection {
    public let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    public enum ReceiveResult: Equatable {
        case received([UInt8])
        case wouldBlock
        /// The peer closed its side, or the connection failed: either way nothing more will come.
        case closed
    }

    /// Reads what is there, at most `maxBytes` (> 0), without waiting.
    public func receive(maxBytes: Int) -> ReceiveResult {
        var buffer = [UInt8](repeating: 0, count: maxBytes)
        let count = recv(descriptor, &buffer, maxBytes, Int32(MSG_DONTWAIT))
        if count > 0 { return .received(Array(buffer[0..<count])) }
        if count == 0 { return .closed }
        switch Glibc.errno {
        case EAGAIN, EWOULDBLOCK, EINTR: return .wouldBlock
        default: return .closed
        }
    }

    public enum SendResult: Equatable {
        case sent(Int)
        case wouldBlock
        case failed
    }

    /// Writes as much of `bytes` as the socket takes now, without waiting (and without SIGPIPE).
    public func send(_ bytes: ArraySlice<UInt8>) -> SendResult {
        guard !bytes.isEmpty else { return .sent(0) }
        let sent = bytes.withUnsafeBytes {
            Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
        if sent >= 0 { return .sent(sent) }
        switch Glibc.errno {
        case EAGAIN, EWOULDBLOCK, EINTR: return .wouldBlock
        default: return .failed
        }
    }

    /// Sends FIN after the queued response while still reading: closing with unread request bytes would send a
    /// reset instead, and a reset can discard the response before the client reads it.
    public func shutdownWrites() {
        _ = shutdown(descriptor, Int32(SHUT_WR))
    }
}
