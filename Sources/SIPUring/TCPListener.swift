public import SIPBytes
// Not used directly: once another file of this module uses SOCK_STREAM through CSIPUring (which includes
// <sys/socket.h>), the compiler attributes the constant to CSIPUring and files without this import lose it.
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket for the admin HTTP server (not the SIP data path). Closed on deinit.
public final class TCPListener: Sendable {
    public let descriptor: Int32
    public let localAddress: EndpointAddress

    public init(binding address: EndpointAddress) throws(SystemCallError) {
        let family = address.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError(call: "socket", errno: Glibc.errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        localAddress = try bindOrClose(fd, to: address)
        guard listen(fd, 64) == 0 else {
            let error = Glibc.errno
            close(fd)
            throw SystemCallError(call: "listen(\(address))", errno: error)
        }
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }

    /// Waits up to `timeoutMilliseconds` for a connection; nil when none came.
    public func accept(timeoutMilliseconds: Int32) -> TCPConnection? {
        var descriptor = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, timeoutMilliseconds) > 0 else { return nil }
        let fd = Glibc.accept(self.descriptor, nil, nil)
        guard fd >= 0 else { return nil }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return TCPConnection(descriptor: fd)
    }
}

/// One accepted admin connection: read a bounded request head, write a response, close.
public final class TCPConnection {
    let descriptor: Int32

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Reads until the end of an HTTP request head (CRLF CRLF), at most `maxBytes`, giving up after
    /// `timeoutMilliseconds` (slow clients do not hold the admin thread). Nil on timeout, overflow or close.
    public func readRequestHead(maxBytes: Int = 8_192, timeoutMilliseconds: Int32 = 1_000) -> [UInt8]? {
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2_048)
        while head.count < maxBytes {
            var descriptor = pollfd(fd: self.descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, timeoutMilliseconds) > 0 else { return nil }
            let count = recv(self.descriptor, &chunk, min(chunk.count, maxBytes - head.count), 0)
            guard count > 0 else { return nil }
            head += chunk[0..<count]
            if head.count >= 4, head.suffix(4) == [13, 10, 13, 10] { return head }
            if let range = head.firstRange(of: [13, 10, 13, 10]) { return Array(head[..<range.upperBound]) }
        }
        return nil
    }

    /// Writes all of `bytes` (blocking, the admin thread only).
    public func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
