import SIPBytes
import CSIPUring

#if canImport(Glibc)
import Glibc
#endif

/// The Unix socket between a running sip-edge and the successor it started for a zero-downtime restart
/// (SOCK_SEQPACKET: one text message per send, listening sockets riding along as SCM_RIGHTS). The only place
/// descriptors cross a process boundary. Closed on deinit.
public final class HandoverChannel: @unchecked Sendable {
    // @unchecked: `descriptor` never changes; sends and receives are whole messages (SOCK_SEQPACKET), each side
    // used by one thread at a time.
    public let descriptor: Int32

    /// One message: its text and the descriptors that came with it (ours to close or adopt).
    public struct Message: Sendable {
        public let text: String
        public let descriptors: [Int32]
    }

    /// Wraps an inherited end (`SIPEDGE_HANDOVER_FD` in the successor), made close-on-exec so it goes no further.
    public init(inheritedDescriptor: Int32) throws(SystemCallError) {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(inheritedDescriptor, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            throw SystemCallError(call: "handover descriptor \(inheritedDescriptor)", errno: Glibc.errno)
        }
        guard type == Int32(SOCK_SEQPACKET.rawValue) else {
            throw SystemCallError(call: "handover descriptor \(inheritedDescriptor) (not a SOCK_SEQPACKET socket)",
                                  errno: ENOTSOCK)
        }
        _ = fcntl(inheritedDescriptor, F_SETFD, FD_CLOEXEC)
        descriptor = inheritedDescriptor
    }

    private init(owning descriptor: Int32) {
        self.descriptor = descriptor
    }

    deinit {
        Glibc.close(descriptor)
    }

    /// Starts `executable` with `arguments` and `environment` plus `SIPEDGE_HANDOVER_FD=3`, the other end of a new
    /// channel as its descriptor 3. Returns our end and the child's pid.
    public static func spawnSuccessor(executable: String, arguments: [String], environment: [String: String])
        throws(SystemCallError) -> (channel: HandoverChannel, pid: Int32) {
        var ends: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &ends) == 0 else {
            throw SystemCallError(call: "socketpair", errno: Glibc.errno)
        }
        let ours = HandoverChannel(owning: ends[0])
        defer { Glibc.close(ends[1]) }
        var variables = environment
        variables[inheritedVariable] = "\(childDescriptor)"
        let argv = [executable] + arguments
        let envp = variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        var pid: Int32 = 0
        let status = withCStrings(argv) { argvPointers in
            withCStrings(envp) { envpPointers in
                csip_spawn_with_descriptor(executable, argvPointers, envpPointers, ends[1], childDescriptor, &pid)
            }
        }
        guard status == 0 else { throw SystemCallError(call: "posix_spawn(\(executable))", errno: -status) }
        return (ours, pid)
    }

    /// The variable naming the inherited end in the successor.
    public static let inheritedVariable = "SIPEDGE_HANDOVER_FD"
    static let childDescriptor: Int32 = 3

    /// Sends `text` with `descriptors` (at most 64; they stay open here).
    public func send(_ text: String, descriptors: [Int32] = []) throws(SystemCallError) {
        let bytes = Array(text.utf8)
        let status = bytes.withUnsafeBufferPointer { data in
            descriptors.withUnsafeBufferPointer { fds in
                csip_send_descriptors(descriptor, data.baseAddress, data.count, fds.baseAddress, UInt32(fds.count))
            }
        }
        guard status == 0 else { throw SystemCallError(call: "handover send", errno: -status) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: no limit) for the next message. nil: the peer closed its end (or
    /// exited). Throws on timeout (ETIMEDOUT) and on a message too large.
    public func receive(timeoutMilliseconds: Int32) throws(SystemCallError) -> Message? {
        var poll = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = Glibc.poll(&poll, 1, timeoutMilliseconds)
            if ready > 0 { break }
            if ready == 0 { throw SystemCallError(call: "handover receive", errno: ETIMEDOUT) }
            if Glibc.errno != EINTR { throw SystemCallError(call: "handover poll", errno: Glibc.errno) }
        }
        var data = [UInt8](repeating: 0, count: 16_384)
        var fds = [Int32](repeating: -1, count: 64)
        var received: UInt32 = 0
        let length = data.withUnsafeMutableBufferPointer { buffer in
            fds.withUnsafeMutableBufferPointer { fdBuffer in
                csip_receive_descriptors(descriptor, buffer.baseAddress, buffer.count, fdBuffer.baseAddress,
                                         UInt32(fdBuffer.count), &received)
            }
        }
        if length == 0 { return nil }
        if length < 0 {
            if -length == ECONNRESET { return nil }
            throw SystemCallError(call: "handover receive", errno: -length)
        }
        return Message(text: String(decoding: data[..<Int(length)], as: UTF8.self),
                       descriptors: Array(fds[..<Int(received)]))
    }
}

/// A child this process started (the successor of a handover), reaped so it leaves no zombie.
public enum ChildProcess {
    /// The child's exit status if it has ended (reaping it), nil while it runs. A signal shows as 128 + its number.
    public static func exitStatus(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}

/// Descriptor housekeeping for sockets that change hands.
public enum Descriptor {
    /// A close-on-exec copy of `descriptor` (the same socket), or nil.
    public static func duplicate(_ descriptor: Int32) -> Int32? {
        let copy = fcntl(descriptor, F_DUPFD_CLOEXEC, 0)
        return copy >= 0 ? copy : nil
    }

    public static func close(_ descriptor: Int32) {
        _ = Glibc.close(descriptor)
    }

    /// Checks that `descriptor` (handed over by another process) is a bound socket of `type` (SOCK_DGRAM,
    /// SOCK_STREAM), listening when `listening`, on `expecting`'s port when given; returns its local address.
    /// Closes it and throws otherwise.
    static func adopt(_ descriptor: Int32, type: Int32, listening: Bool, expecting: EndpointAddress?)
        throws(SystemCallError) -> EndpointAddress {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        var problem: String?
        var error: Int32 = EINVAL
        var local = sockaddr_storage()
        var localLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        if getsockopt(descriptor, SOL_SOCKET, SO_TYPE, &value, &length) != 0 {
            (problem, error) = ("not a socket", Glibc.errno)
        } else if value != type {
            problem = "socket type \(value), not \(type)"
        } else if listening, getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) != 0 || value != 1 {
            problem = "not listening"
        } else if withUnsafeMutablePointer(to: &local, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &localLength) }
        }) != 0 {
            (problem, error) = ("getsockname", Glibc.errno)
        }
        let address = problem == nil ? EndpointAddress(storage: local) : nil
        if problem == nil, address == nil || address?.port == 0 { problem = "not bound" }
        if problem == nil, let expecting, let address,
           address.port != expecting.port || address.family != expecting.family {
            problem = "bound to \(address), expected \(expecting)"
        }
        guard let address, problem == nil else {
            _ = Glibc.close(descriptor)
            throw SystemCallError(call: "adopt handed-over socket (\(problem ?? "unusable"))", errno: error)
        }
        return address
    }
}

/// `body` with a NULL-terminated C array of `strings`.
private func withCStrings<Result>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> Result) -> Result {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return body(pointers)
}
