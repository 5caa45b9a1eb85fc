public import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// A public listener the configuration asks for, named the way an operator reads it: `udp 127.0.0.1:5060`.
public struct PublicListener: Sendable, Hashable, CustomStringConvertible {
    public enum Transport: String, Sendable {
        case udp, tcp, tls, ws, wss
    }

    public let transport: Transport
    public let address: EndpointAddress

    public init(_ transport: Transport, _ address: EndpointAddress) {
        self.transport = transport
        self.address = address
    }

    public var description: String { "\(transport.rawValue) \(address)" }
}

/// An address we need and cannot have. A start-up failure: the process must not run on without it.
public struct ListenerError: Error, CustomStringConvertible {
    /// What the address is for and the address: `udp 127.0.0.1:5060`, `admin 127.0.0.1:9090`.
    public let listener: String
    public let errno: Int32

    public init(listener: String, errno: Int32) {
        self.listener = listener
        self.errno = errno
    }

    /// The listener a failed bind names (``SystemCallError`` from `bind`), nil for any other failure.
    public init?(_ error: SystemCallError) {
        guard let target = error.bindTarget else { return nil }
        self.init(listener: target, errno: error.errno)
    }

    public var description: String {
        switch errno {
        case EADDRINUSE: "\(listener) is in use by another process"
        case 0: "\(listener): another sip-edge has been starting on this port for too long"
        default: "\(listener) cannot be bound: \(String(cString: strerror(errno))) (errno \(errno))"
        }
    }
}

/// Refuses to start on ports another process holds.
///
/// Every worker binds the public ports with SO_REUSEPORT, so a second sip-edge on the same address would bind too,
/// and the kernel would split the traffic between the two processes (source steering, flow tokens and per-source
/// limits all assume one process owns the port). The check is a probe bind of each exact address *without*
/// SO_REUSEPORT, closed at once: the kernel's own conflict rules then answer EADDRINUSE exactly when some socket
/// holds the port — on the same address or on a wildcard (0.0.0.0, ::) — whoever owns it. For TCP the probe sets
/// SO_REUSEADDR, as the listeners do, so connections in TIME_WAIT (ours, from a previous run) do not count.
/// Chosen over comparing /proc/net/{udp,tcp}[6] with our own socket inodes after binding because it needs no
/// re-implementation of the kernel's address-overlap rules (wildcards, v4-mapped IPv6) and fails before any
/// worker exists; the same probe also turns EADDRNOTAVAIL and EACCES into a clear start-up error.
///
/// The race: between the probe and the workers' binds another process could bind the port with SO_REUSEPORT
/// (one without it fails itself once our workers hold the port, or makes our workers' bind fail). Two sip-edges
/// started at the same moment are the realistic case, so the probe and the binds run under a start-up lock per
/// port (``StartupLock``) that every sip-edge takes: the second one probes only after the first has bound, and
/// is refused. What stays open is a process other than sip-edge binding with SO_REUSEPORT, under our user,
/// inside that window of milliseconds.
public enum PortClaim {
    /// Who the public ports belong to at start-up.
    public enum Ownership: Sendable {
        /// Ours to claim: they must be free (every normal start).
        case fresh
        /// Handed over by a predecessor that still holds them (a zero-downtime restart passing its sockets): they
        /// are in use by design, so nothing is checked. Not implemented yet; the one way around the check.
        case inherited
    }

    /// Takes the start-up lock of every port in `listeners`, then probes each listener. Keep the returned lock
    /// until every worker has bound its sockets, then release it. Throws the first listener that is taken or
    /// cannot be bound.
    public static func claim(_ listeners: [PublicListener], ownership: Ownership,
                             lockTimeoutMilliseconds: Int = 10_000) throws(ListenerError) -> StartupLock? {
        guard ownership == .fresh else { return nil }
        let lock = try StartupLock(listeners: listeners, timeoutMilliseconds: lockTimeoutMilliseconds)
        for listener in listeners {
            let status = probe(listener)
            guard status == 0 else { throw ListenerError(listener: listener.description, errno: status) }
        }
        return lock
    }

    /// Binds a throw-away socket to `listener`'s exact address without SO_REUSEPORT; returns 0 or the errno.
    static func probe(_ listener: PublicListener) -> Int32 {
        let stream = listener.transport != .udp
        let kind = stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        let fd = socket(listener.address.family == .ipv4 ? AF_INET : AF_INET6, kind | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return Glibc.errno }
        defer { _ = Glibc.close(fd) }
        var one: Int32 = 1
        if stream, setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            return Glibc.errno
        }
        var storage = sockaddr_storage()
        let length = listener.address.write(to: &storage)
        let bound = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        return bound == 0 ? 0 : Glibc.errno
    }
}

/// Serialises the start-up of sip-edge processes that share a port number: an abstract Unix socket named after
/// the port, bound for as long as the lock is held. The kernel releases it when the process exits, however it
/// exits, so a crashed start-up never leaves a stale lock; abstract names are per network namespace, like ports.
public final class StartupLock {
    private var descriptors: [Int32] = []

    /// Takes the lock of every port number in `listeners`, lowest first (two processes never wait on each other),
    /// waiting up to `timeoutMilliseconds` for each. A lock that cannot be created for another reason than being
    /// held (a sandbox refusing AF_UNIX) is skipped: the probe still runs, only the race window reopens.
    init(listeners: [PublicListener], timeoutMilliseconds: Int) throws(ListenerError) {
        for port in Set(listeners.map(\.address.port)).sorted() {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { continue }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            let name = Array("sip-edge/start/\(port)".utf8)
            withUnsafeMutableBytes(of: &address.sun_path) { path in
                path[0] = 0  // abstract namespace: no file
                for (offset, byte) in name.enumerated() { path[offset + 1] = byte }
            }
            let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + name.count)
            var waited = 0
            while true {
                let bound = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
                }
                if bound == 0 {
                    descriptors.append(fd)
                    break
                }
                let error = Glibc.errno
                guard error == EADDRINUSE else {
                    _ = Glibc.close(fd)
                    break
                }
                guard waited < timeoutMilliseconds else {
                    _ = Glibc.close(fd)
                    let held = listeners.first { $0.address.port == port }.map(\.description) ?? "port \(port)"
                    release()
                    throw ListenerError(listener: held, errno: 0)
                }
                usleep(10_000)
                waited += 10
            }
        }
    }

    /// Lets the next sip-edge on these ports start. Idempotent; deinit releases too.
    public func release() {
        for fd in descriptors { _ = Glibc.close(fd) }
        descriptors.removeAll()
    }

    deinit {
        release()
    }
}
