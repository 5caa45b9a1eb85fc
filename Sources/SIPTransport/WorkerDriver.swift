import SIPBytes
import SIPSettings
import SIPUring

/// A worker's two UDP sockets: the public one (shared port, SO_REUSEPORT) and its own upstream-facing one (its
/// own port, so the core's responses and requests for its flows come back to this worker).
/// A class, held by a `let`: the send path reads its sockets several times a message, and a struct of three
/// references read from a worker's `var` was copied (three retains and releases) on every read.
final class DatagramSockets {
    static let publicTag: UInt32 = 0
    static let upstreamTag: UInt32 = 1

    /// Upstream sockets adopted from a drained predecessor take tags from here on.
    static let legacyTagBase: UInt32 = 16
    /// Bounded by the recvmmsg path's ready mask (64 bits, two taken); one per restart while dialogs span them.
    static let maxLegacyUpstreams = 60

    let publicSocket: UDPSocket
    let upstreamSocket: UDPSocket
    /// A predecessor's upstream sockets (a zero-downtime restart): read like ours; we send through our own.
    var legacyUpstreams: [UDPSocket] = []

    init(publicSocket: UDPSocket, upstreamSocket: UDPSocket) {
        self.publicSocket = publicSocket
        self.upstreamSocket = upstreamSocket
    }

    func socket(tag: UInt32) -> UDPSocket {
        if tag >= Self.legacyTagBase, Int(tag - Self.legacyTagBase) < legacyUpstreams.count {
            return legacyUpstreams[Int(tag - Self.legacyTagBase)]
        }
        return tag == Self.upstreamTag ? upstreamSocket : publicSocket
    }

    /// The receive tags of every upstream-facing socket: ours, then the adopted ones.
    var upstreamTags: [UInt32] {
        [Self.upstreamTag] + legacyUpstreams.indices.map { Self.legacyTagBase + UInt32($0) }
    }
}

/// How a worker's sockets are driven. One value per worker, chosen at start: the io_uring ring carries UDP, TCP
/// and TLS; the fallback, for systems that refuse io_uring (containers, seccomp), carries UDP only.
enum WorkerDriver {
    /// io_uring: multishot recvmsg into provided buffers, sends batched through the ring, streams on the ring.
    case ring(URing)
    /// epoll + recvmmsg, and outgoing datagrams batched per socket into one sendmmsg per batch.
    case readiness(ReadinessDriver)

    /// Chooses the driver `dataPath` asks for (`.auto`: the ring when the kernel allows it) and arms the sockets.
    init(dataPath: DataPath, uring: URingOptions, sockets: DatagramSockets, batchSize: Int) throws {
        let ring: URing?
        switch dataPath {
        case .recvmmsg: ring = nil
        case .ioUring: ring = try URing(options: uring)
        case .auto: ring = try? URing(options: uring)
        }
        if let ring {
            try ring.armReceive(on: sockets.publicSocket, tag: DatagramSockets.publicTag)
            try ring.armReceive(on: sockets.upstreamSocket, tag: DatagramSockets.upstreamTag)
            self = .ring(ring)
        } else {
            self = .readiness(try ReadinessDriver(sockets: sockets, batchSize: batchSize))
        }
    }

    /// The data path in use (`.auto` resolved).
    var dataPath: DataPath {
        switch self {
        case .ring: .ioUring
        case .readiness: .recvmmsg
        }
    }

    /// Sends one datagram: through the ring when it has room (else directly), or into the fallback's batch.
    /// Returns the number of datagrams known lost (0 or 1): the batch reports its losses when it is flushed.
    /// Each socket and batch is passed as stored, in its own branch: one chosen into a local first is a copy, a
    /// retain and a release every datagram.
    func sendDatagram(_ bytes: PacketBytes, to destination: EndpointAddress, viaUpstream: Bool,
                      sockets: DatagramSockets) -> Int {
        switch self {
        case .ring(let ring):
            return viaUpstream
                ? Self.send(bytes, through: ring, on: sockets.upstreamSocket, tag: DatagramSockets.upstreamTag,
                            to: destination)
                : Self.send(bytes, through: ring, on: sockets.publicSocket, tag: DatagramSockets.publicTag,
                            to: destination)
        case .readiness(let readiness):
            return viaUpstream ? readiness.upstreamSends.append(bytes, to: destination, on: sockets.upstreamSocket)
                : readiness.publicSends.append(bytes, to: destination, on: sockets.publicSocket)
        }
    }

    /// Through the ring when it has room, else directly.
    @inline(__always)
    private static func send(_ bytes: PacketBytes, through ring: URing, on socket: UDPSocket, tag: UInt32,
                             to destination: EndpointAddress) -> Int {
        if ring.send(bytes, on: socket, tag: tag, to: destination) { return 0 }
        return socket.send(bytes, to: destination) ? 0 : 1
    }
}

/// The fallback driver's state: the epoll set over the two sockets, the receive batch, and one send batch per
/// socket.
final class ReadinessDriver {
    let poll: ReadinessPoll
    let batch: DatagramBatch
    let publicSends: DatagramSendBatch
    let upstreamSends: DatagramSendBatch

    init(sockets: DatagramSockets, batchSize: Int) throws {
        poll = try ReadinessPoll([sockets.publicSocket, sockets.upstreamSocket])
        batch = DatagramBatch(capacity: batchSize)
        publicSends = DatagramSendBatch(capacity: batchSize)
        upstreamSends = DatagramSendBatch(capacity: batchSize)
    }

    /// Sends everything batched since the last flush, one sendmmsg per socket; returns the datagrams lost.
    func flush(_ sockets: DatagramSockets) -> Int {
        publicSends.flush(on: sockets.publicSocket) + upstreamSends.flush(on: sockets.upstreamSocket)
    }
}

/// Multishot receives that the kernel ended and that could not be armed again at once. A socket left unarmed is
/// never read again, so a failed re-arm is retried on every loop turn, and one still failing after `limit`
/// milliseconds fails the worker loudly instead of letting it run on deaf.
struct PendingRearms {
    private(set) var failingSince: [UInt32: UInt64] = [:]
    let limit: UInt64

    init(limit: UInt64 = 1_000) {
        self.limit = limit
    }

    var isEmpty: Bool { failingSince.isEmpty }
    var tags: [UInt32] { failingSince.keys.sorted() }

    mutating func failed(_ tag: UInt32, now: UInt64) {
        if failingSince[tag] == nil { failingSince[tag] = now }
    }

    mutating func armed(_ tag: UInt32) {
        failingSince[tag] = nil
    }

    /// A socket that has stayed unarmed past the limit, if any.
    func overdue(now: UInt64) -> UInt32? {
        failingSince.first { now - $0.value >= limit }?.key
    }
}

/// The worker cannot go on: it stops and says why (the process then stops with an error).
public struct WorkerFailure: Error, CustomStringConvertible {
    public let description: String
}
