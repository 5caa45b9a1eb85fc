import SIPProxyCore
import SIPUring
import Synchronization
import SIPLocks

/// What a socket of a worker is for, as a handover names it: the public UDP socket, the worker's own
/// upstream-facing UDP socket, and the stream listeners.
public enum SocketRole: String, Sendable, CaseIterable {
    case udp, upstream, tcp, tls, ws, wss

    /// The stream listener role of an accept tag (what its connections' transport is).
    static func listener(acceptTag: UInt32) -> SocketRole {
        switch StreamTransport.transport(ofAcceptTag: acceptTag) {
        case .tls: .tls
        case .ws: .ws
        case .wss: .wss
        case .tcp, .udp: .tcp
        }
    }
}

/// The zero-downtime restart as the workers see it, shared by them and the main thread (one per process).
///
/// A predecessor's sockets arrive before the workers start (``inherited``: each worker adopts its own instead of
/// binding), and the upstream sockets it kept while draining arrive later (``postLegacyUpstreams(_:)``: each worker
/// adopts its own between two loop turns). When this process hands over in its turn, every worker's sockets are
/// listed (``register(worker:role:descriptor:)``), ``startDrain(deadline:)`` makes the workers stop taking new
/// datagrams and connections and end once their connections have closed (or at the deadline), and each leaves a
/// copy of its upstream sockets (``returnUpstreams(worker:descriptors:)``) for the successor.
///
/// Nothing here is touched per message: the workers read one atomic per loop turn.
public final class WorkerHandover: Sendable {
    /// Sockets handed over by the predecessor, by worker and role (descriptors this process owns).
    private let inheritedSockets: Locked<[Int: [SocketRole: Int32]]>
    /// Every worker's sockets, for handing them to a successor.
    private let registered = Locked<[Int: [SocketRole: Int32]]>([:])
    /// The drain deadline in monotonic milliseconds; 0 while serving normally.
    private let drainDeadline = Atomic<UInt64>(0)
    /// Upstream sockets the drained workers leave for the successor (copies; the workers close theirs).
    private let returned = Locked<[Int: [Int32]]>([:])
    /// Upstream sockets a drained predecessor sent, waiting for their worker; the generation tells a worker to look.
    private let legacy = Locked<[Int: [Int32]]>([:])
    private let legacyGeneration = Atomic<UInt64>(0)

    public init(inherited: [Int: [SocketRole: Int32]] = [:]) {
        inheritedSockets = Locked(inherited)
    }

    // MARK: Taking over

    /// The predecessor's socket for `worker`'s `role`, taken (nil: bind a new one).
    func takeInherited(worker: Int, role: SocketRole) -> Int32? {
        inheritedSockets.withLock { $0[worker]?.removeValue(forKey: role) }
    }

    /// Inherited sockets no worker took (a listener the new configuration dropped): closed.
    public func closeUnclaimedInherited() -> Int {
        let left = inheritedSockets.withLock { state in
            defer { state.removeAll() }
            return state.values.flatMap(\.values)
        }
        for descriptor in left { Descriptor.close(descriptor) }
        return left.count
    }

    /// Hands a drained predecessor's upstream sockets to the workers (by worker index).
    public func postLegacyUpstreams(_ sockets: [Int: [Int32]]) {
        legacy.withLock { state in
            for (worker, descriptors) in sockets { state[worker, default: []] += descriptors }
        }
        legacyGeneration.add(1, ordering: .releasing)
    }

    var legacyUpstreamGeneration: UInt64 { legacyGeneration.load(ordering: .acquiring) }

    func takeLegacyUpstreams(worker: Int) -> [Int32] {
        legacy.withLock { $0.removeValue(forKey: worker) ?? [] }
    }

    // MARK: Handing over

    func register(worker: Int, role: SocketRole, descriptor: Int32) {
        registered.withLock { $0[worker, default: [:]][role] = descriptor }
    }

    /// Every worker's listening sockets (all roles but `upstream`), for the successor. Valid while the workers run.
    public var listeningSockets: [Int: [SocketRole: Int32]] {
        registered.withLock { state in state.mapValues { $0.filter { $0.key != .upstream } } }
    }

    /// Tells the workers to stop taking new datagrams and connections and to end once their connections have
    /// closed, or at `deadline` (monotonic milliseconds) at the latest.
    public func startDrain(deadline: UInt64) {
        drainDeadline.store(max(deadline, 1), ordering: .releasing)
    }

    /// The drain deadline, 0 while serving normally.
    var drainingUntil: UInt64 { drainDeadline.load(ordering: .acquiring) }

    func returnUpstreams(worker: Int, descriptors: [Int32]) {
        returned.withLock { $0[worker, default: []] += descriptors }
    }

    /// The upstream sockets the drained workers left (copies this process owns until sent and closed).
    public func takeReturnedUpstreams() -> [Int: [Int32]] {
        returned.withLock { state in
            defer { state.removeAll() }
            return state
        }
    }
}
