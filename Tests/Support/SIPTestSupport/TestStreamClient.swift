public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP client on loopback for tests: connect, write, read with a deadline, see the peer close.
public final class TestStreamClient {
    public let descriptor: Int32
    private var received: [UInt8] = []

    /// Connects to 127.0.0.1:`port`; nil when the connection is refused.
    public init?(port: Int, receiveBuffer: Int32? = nil) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        if var size = receiveBuffer {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            return nil
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// The client's own port (what the server sees as the source port).
    public var localPort: Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public func send(_ text: String) { send(bytes: Array(text.utf8)) }

    /// Reads until `done` holds for everything received so far, the peer closes, or `timeout` seconds pass.
    /// Returns everything received on this connection.
    @discardableResult
    public func receive(timeout: TimeInterval, until done: (String) -> Bool) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while !done(text), Date() < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 50) > 0 else { continue }
            let count = recv(descriptor, &chunk, chunk.count, 0)
            if count <= 0 {
                peerClosed = true
                break
            }
            received += chunk[0..<count]
        }
        return text
    }

    /// Waits up to `timeout` seconds for the peer to close the connection (reading and keeping what arrives).
    public func waitForClose(timeout: TimeInterval) -> Bool {
        receive(timeout: timeout) { _ in false }
        return peerClosed
    }

    public private(set) var peerClosed = false

    public var text: String { String(decoding: received, as: UTF8.self) }

    /// Everything received and not dropped yet, as bytes (for binary protocols read piece by piece).
    public var bytes: [UInt8] { received }

    /// Forgets the first `count` received bytes (a piece already read).
    public func drop(_ count: Int) { received.removeFirst(min(count, received.count)) }

    public func send(bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return }
            offset += sent
        }
    }
}
