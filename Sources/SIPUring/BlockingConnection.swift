public import SIPBytes

#if canImport(Glibc)
import Glibc
#endif

/// A TCP connection for a thread that may wait (the shared-state client, never a worker): connect, send and
/// receive with deadlines, so a peer that stops answering (a Redis under SIGSTOP) costs a timeout, not a hang.
public final class BlockingConnection {
    private var descriptor: Int32

    /// Connects to `address` within `timeoutMilliseconds`; nil when it cannot.
    public init?(to address: EndpointAddress, timeoutMilliseconds: Int32) {
        let fd = socket(address.family == .ipv4 ? AF_INET : AF_INET6,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        var storage = sockaddr_storage()
        let length = address.write(to: &storage)
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
        }
        if result != 0 {
            guard Glibc.errno == EINPROGRESS, Self.wait(fd, for: Int16(POLLOUT), timeoutMilliseconds) else {
                Glibc.close(fd)
                return nil
            }
            var error: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &size) == 0, error == 0 else {
                Glibc.close(fd)
                return nil
            }
        }
        _ = setNoDelay(fd)
        descriptor = fd
    }

    deinit {
        if descriptor >= 0 { Glibc.close(descriptor) }
    }

    /// Sends all of `bytes` within the deadline; false on error or timeout.
    public func send(_ bytes: [UInt8], timeoutMilliseconds: Int32) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (Glibc.errno == EAGAIN || Glibc.errno == EINTR) {
                guard Self.wait(descriptor, for: Int16(POLLOUT), timeoutMilliseconds) else { return false }
            } else {
                return false
            }
        }
        return true
    }

    /// Appends what arrives within `timeoutMilliseconds` (0: only what is already there) to `buffer`. Returns
    /// false when the peer closed or the connection failed; true otherwise (also when nothing came).
    public func receive(into buffer: inout [UInt8], timeoutMilliseconds: Int32) -> Bool {
        guard Self.wait(descriptor, for: Int16(POLLIN), timeoutMilliseconds) else { return true }
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let count = chunk.withUnsafeMutableBytes { Glibc.recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count > 0 {
            buffer.append(contentsOf: chunk[0..<count])
            return true
        }
        if count < 0 && (Glibc.errno == EAGAIN || Glibc.errno == EINTR) { return true }
        return false
    }

    private static func wait(_ fd: Int32, for events: Int16, _ timeoutMilliseconds: Int32) -> Bool {
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&entry, 1, timeoutMilliseconds)
        return ready > 0
    }
}
