public import SIPBytes
import SIPParsing
public import SIPProxyCore
import SIPUring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Settings every worker reads; built once, before any worker starts, and never changed while they run.
public struct WorkerConfiguration: Sendable {
    public var listen: EndpointAddress
    public var proxy: ProxyConfiguration
    public var parseLimits: ParseLimits
    /// Datagrams taken per receive call.
    public var batchSize: Int

    public init(listen: EndpointAddress, proxy: ProxyConfiguration, parseLimits: ParseLimits = ParseLimits(),
                batchSize: Int = 32) {
        self.listen = listen
        self.proxy = proxy
        self.parseLimits = parseLimits
        self.batchSize = batchSize
    }
}

/// Tells workers to stop; shared by all of them, read once per loop turn (not per message).
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}

/// Per-worker counters: plain integers written only by the worker's thread.
public struct WorkerCounters: Sendable {
    public var received = 0
    public var forwarded = 0
    public var replied = 0
    public var parseErrors = 0
    public var truncated = 0
    public var keepalives = 0
    public var sendFailures = 0
    public var dropped: [DropReason: Int] = [:]

    public init() {}
}

/// One UDP worker: its own public socket (SO_REUSEPORT on the shared port), its own upstream socket (its own port,
/// so upstream responses return to it), its own parser and proxy. Runs on a dedicated thread.
public final class UDPWorker {
    public let index: Int
    private let configuration: WorkerConfiguration
    private let publicSocket: UDPSocket
    private let upstreamSocket: UDPSocket
    private let parser: SIPParser
    private let proxy: StatelessProxy
    private let batch: DatagramBatch
    public private(set) var counters = WorkerCounters()

    public init(index: Int, configuration: WorkerConfiguration) throws {
        self.index = index
        self.configuration = configuration
        publicSocket = try UDPSocket(binding: configuration.listen, reusePort: true)
        let upstreamFamily: EndpointAddress = configuration.listen.family == .ipv4
            ? EndpointAddress.parse("0.0.0.0", port: 0)! : EndpointAddress.parse("::", port: 0)!
        upstreamSocket = try UDPSocket(binding: upstreamFamily, reusePort: false)
        parser = try SIPParser(limits: configuration.parseLimits)
        proxy = StatelessProxy(configuration: configuration.proxy)
        batch = DatagramBatch(capacity: configuration.batchSize)
    }

    /// The port toward the upstream: where its responses come back.
    public var upstreamPort: UInt16 { upstreamSocket.localAddress.port }

    /// Runs until `stop` is signalled; checks it at least every 200 ms.
    public func run(until stop: StopSignal) {
        let sockets = [publicSocket, upstreamSocket]
        while !stop.isStopped {
            let ready = waitForReadable(sockets, timeoutMilliseconds: 200)
            if ready & 1 != 0 { drain(publicSocket) }
            if ready & 2 != 0 { drain(upstreamSocket) }
        }
    }

    private func drain(_ socket: UDPSocket) {
        // Bounded: at most 16 batches per wake-up, so one busy socket cannot starve the other.
        for _ in 0..<16 {
            let count = batch.receive(from: socket)
            if count == 0 { return }
            for i in 0..<count { handleDatagram(i) }
        }
    }

    private func handleDatagram(_ i: Int) {
        counters.received += 1
        if batch.isTruncated(i) {
            counters.truncated += 1
            return
        }
        batch.withDatagram(i) { bytes, source in
            guard let source else { return }
            if Self.isKeepalive(bytes) {
                counters.keepalives += 1
                return
            }
            let message: SIPMessage
            do throws(SIPParseError) {
                message = try parser.parse(bytes)
            } catch {
                counters.parseErrors += 1
                return
            }
            switch proxy.process(message, source: source) {
            case .forward(let destination):
                let socket = proxy.side(of: destination) == .upstream ? upstreamSocket : publicSocket
                if socket.send(proxy.output, to: destination) { counters.forwarded += 1 } else { counters.sendFailures += 1 }
            case .reply(_, let destination):
                if publicSocket.send(proxy.output, to: destination) { counters.replied += 1 } else { counters.sendFailures += 1 }
            case .drop(let reason):
                counters.dropped[reason, default: 0] += 1
            }
        }
    }

    /// RFC 5626 keep-alive: a datagram of only CRLFs.
    static func isKeepalive(_ bytes: PacketBytes) -> Bool {
        guard bytes.count > 0, bytes.count <= 4 else { return false }
        for i in 0..<bytes.count where bytes[i] != 0x0D && bytes[i] != 0x0A { return false }
        return true
    }
}
