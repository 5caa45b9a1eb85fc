import SIPBytes
import SIPCapture
public import SIPSettings
import SIPParsing
import SIPProxyCore
import SIPSecurity
public import SIPMetrics
import SIPUring
import Synchronization

/// A worker configuration this system cannot serve.
public struct WorkerSetupError: Error, CustomStringConvertible {
    public let description: String
}

/// Tells workers to stop; shared by all of them, read once per loop turn (not per message).
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .releasing) }
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
}

/// One worker: its own public UDP socket and TCP/TLS listeners (SO_REUSEPORT on the shared ports), its own upstream
/// socket (its own port, so upstream responses and requests for its flows return to it), its own connections,
/// parser, policy and proxy. Runs on a dedicated thread.
///
/// It composes the parts and runs the loop: the driver brings events (``WorkerDriver``), the pipeline decides what
/// a message becomes (``MessagePipeline``), the stream transport owns connections and the upstream pool
/// (``StreamTransport``), and the worker is where their output leaves (``FlowSink``).
public final class EdgeWorker {
    public let index: Int
    let configuration: WorkerConfiguration
    private let sockets: DatagramSockets
    private let driver: WorkerDriver
    let pipeline: MessagePipeline
    /// The pipeline's proxy, held here too: a call through `pipeline.proxy` retained and released it every message.
    private let proxy: StatelessProxy
    /// SIP over TCP and TLS and the upstream pool: io_uring path only.
    let streams: StreamTransport?
    private let board: MetricsBoard?
    private let mailbox: PolicyMailbox?
    private var policyGeneration: UInt64 = 0
    private var lastPublished: UInt64 = 0
    private var pendingRearms = PendingRearms()
    /// The upstream set shared by all workers (nil in tests that drive one worker alone: the configured set, all up).
    private let upstreamBoard: UpstreamBoard?
    /// The board word last applied to the proxy's set.
    private var appliedUpstreamWord: UInt64 = 0
    /// Worker 0 runs the health checks for everyone.
    private var monitor: UpstreamMonitor?
    /// Bans shared with other edges (nil: no shared state), and the last remote ban applied.
    private let sharedBans: SharedBans?
    private var appliedRemoteBans: UInt64 = 0
    private var appliedSharedLimits: UInt64 = 0
    /// The sharing interval being counted (0: not started).
    private var countingInterval: UInt64 = 0
    /// Worker 0's injected fault (SIPEDGE_TEST_FAULT; nil on every other worker and in normal operation), met at
    /// the end of the loop turn that brought its first message: checked per turn, not per message.
    private let injectedFault: InjectedFault?
    /// The zero-downtime restart, shared with the main thread (nil in tests that drive one worker alone).
    private let handover: WorkerHandover?
    /// The legacy-upstream generation last looked at (see ``WorkerHandover/postLegacyUpstreams(_:)``).
    private var appliedLegacyGeneration: UInt64 = 0
    /// Set once a successor holds the sockets: no new datagrams or connections, only what is open.
    private var draining = false
    /// Datagram receives cancelled on purpose (a drain): not armed again when they end.
    private var receivesStopped: Set<UInt32> = []
    /// Where the loop's time goes, for `sip_worker_busy_ratio`.
    private var loopClock = LoopClock(started: MonotonicClock.nanoseconds())

    /// The data path this worker actually uses (`.auto` resolved).
    public var dataPath: DataPath { driver.dataPath }
    public var counters: WorkerCounters { pipeline.publishedCounters }

    public init(index: Int, configuration: WorkerConfiguration, board: MetricsBoard? = nil,
                mailbox: PolicyMailbox? = nil, upstreams: UpstreamBoard? = nil, sharedBans: SharedBans? = nil,
                handover: WorkerHandover? = nil) throws {
        self.index = index
        self.handover = handover
        self.sharedBans = sharedBans
        self.configuration = configuration
        injectedFault = index == 0 ? configuration.injectedFault : nil
        self.board = board
        self.mailbox = mailbox
        upstreamBoard = upstreams
        policyGeneration = mailbox?.currentGeneration ?? 0
        let publicSocket = try handover?.takeInherited(worker: index, role: .udp)
            .map { try UDPSocket(adopting: $0, expecting: configuration.listen) }
            ?? UDPSocket(binding: configuration.listen, reusePort: true)
        let anyAddress = configuration.listen.family == .ipv4
            ? EndpointAddress.parse("0.0.0.0", port: 0)! : EndpointAddress.parse("::", port: 0)!
        let upstreamSocket = try UDPSocket(binding: anyAddress, reusePort: false)
        // An upstream with no SIP socket answers ICMP port unreachable: a passive health signal.
        if upstreams != nil { try upstreamSocket.reportUnreachableDestinations() }
        sockets = DatagramSockets(publicSocket: publicSocket, upstreamSocket: upstreamSocket)
        handover?.register(worker: index, role: .udp, descriptor: publicSocket.descriptor)
        handover?.register(worker: index, role: .upstream, descriptor: upstreamSocket.descriptor)
        appliedLegacyGeneration = handover?.legacyUpstreamGeneration ?? 0
        driver = try WorkerDriver(dataPath: configuration.dataPath, uring: configuration.uring, sockets: sockets,
                                  batchSize: configuration.batchSize)
        // Path and Record-Route toward the core name this worker's own upstream port, so requests for the flows it
        // owns come back to it.
        var proxyConfiguration = configuration.proxy
        proxyConfiguration.worker = UInt8(truncatingIfNeeded: index)
        proxyConfiguration.internalPort = sockets.upstreamSocket.localAddress.port
        let policy = mailbox?.read()
        if let upstreams {
            let (membership, word) = upstreams.membershipAndWord()
            proxyConfiguration.upstreams = UpstreamSet(membership.members)
            proxyConfiguration.upstreams.setUp(bits: word & UpstreamBoard.upMask)
            appliedUpstreamWord = word
            if index == 0 {
                var monitor = UpstreamMonitor(settings: configuration.upstreamHealth, nonce: SecureRandom.uint64())
                monitor.adopt(membership, upBits: word & UpstreamBoard.upMask)
                self.monitor = monitor
            }
        }
        pipeline = MessagePipeline(
            parser: try SIPParser(limits: configuration.parseLimits),
            proxy: StatelessProxy(configuration: proxyConfiguration),
            security: policy?.security ?? configuration.security, rateLimit: policy?.rateLimit ?? configuration.rateLimit,
            audit: try AuditLog(destination: configuration.audit, linesPerSecond: configuration.auditLinesPerSecond,
                                worker: index),
            transactions: configuration.transactions)
        proxy = pipeline.proxy
        pipeline.countsSources = sharedBans != nil
        if configuration.capture.isEnabled, let target = configuration.capture.target {
            pipeline.capture = try CaptureTap(settings: configuration.capture, target: target,
                                              localAddresses: Self.captureAddresses(configuration, sockets))
        }
        switch driver {
        case .ring(let ring):
            streams = try StreamTransport(ring: ring, pipeline: pipeline, worker: index, configuration: configuration,
                                          tlsContext: policy?.tls, handover: handover)
            if let upstreams { streams?.onPoolFailure = { upstreams.reportFailure($0) } }
        case .readiness:
            // Streams need the ring (accept, receive and send complete there); the fallback serves UDP only, and
            // cannot reach a core configured over TCP/TLS at all: refuse to start rather than answer every
            // request 503.
            if configuration.proxy.upstreamTransport.isStream {
                throw WorkerSetupError(description: "upstream_transport \(configuration.proxy.upstreamTransport) needs "
                                       + "io_uring, which this system does not allow (use upstream_transport: udp, "
                                       + "or allow io_uring)")
            }
            streams = nil
        }
    }

    /// The local ends of captures. The upstream socket is bound to the wildcard address: captured with the listen
    /// address's IP (the kernel's choice for a core on the same network), unless that is a wildcard too.
    static func captureAddresses(_ configuration: WorkerConfiguration, _ sockets: DatagramSockets)
        -> CaptureTap.LocalAddresses {
        let listen = configuration.listen
        var upstream = listen
        upstream.port = sockets.upstreamSocket.localAddress.port
        return CaptureTap.LocalAddresses(publicUDP: sockets.publicSocket.localAddress, upstreamUDP: upstream,
                                         tcp: listen, tls: configuration.tlsListen ?? listen,
                                         ws: configuration.webSocket.plain?.address ?? listen,
                                         wss: configuration.webSocket.secure?.address ?? listen)
    }

    /// Steers the public port's SO_REUSEPORT group by source address, so each client IP stays on one worker.
    /// Call on one worker once every worker's socket is bound.
    public func attachSourceSteering(groupSize: Int) throws {
        try sockets.publicSocket.attachSourceSteering(groupSize: groupSize)
        try streams?.attachSourceSteering(groupSize: groupSize)
    }

    /// Runs until `stop` is signalled (checked at least every 200 ms). Throws when the worker cannot go on (a
    /// socket that can no longer be read): the caller stops the process.
    public func run(until stop: StopSignal) throws(WorkerFailure) {
        board?.markUp(worker: index, true)
        defer {
            pipeline.capture?.flush(now: MonotonicClock.milliseconds())
            publishIfDue(force: true)
            board?.markUp(worker: index, false)
        }
        switch driver {
        case .ring(let ring):
            defer {
                streams?.closeAll()
                drainSends(ring)
            }
            try runRing(ring, until: stop)
        case .readiness(let readiness):
            runReadiness(readiness, until: stop)
        }
    }

    /// The safe point between batches: apply a policy posted since the last turn.
    /// Hands this worker's new bans to the shared-state client and applies other edges' (one atomic load when
    /// there is nothing new).
    private func exchangeBans(now: UInt64) {
        guard let sharedBans else { return }
        let started = pipeline.takeStartedBans()
        if !started.isEmpty { sharedBans.publish(started) }
        // Shared rate limits: at each interval boundary, report the interval's busiest sources.
        let interval = WallClock.milliseconds() / sharedBans.intervalMilliseconds
        if interval != countingInterval {
            if countingInterval != 0 {
                sharedBans.publish(pipeline.takeBusiestSources(limit: sharedBans.busiestSources), interval: countingInterval)
            }
            countingInterval = interval
        }
        if sharedBans.latestLimit != appliedSharedLimits {
            let (sources, upTo) = sharedBans.sharedLimits(after: appliedSharedLimits)
            appliedSharedLimits = upTo
            for source in sources { pipeline.limitShared(source, for: sharedBans.intervalMilliseconds, now: now) }
        }
        guard sharedBans.latest != appliedRemoteBans else { return }
        let (bans, upTo) = sharedBans.remoteBans(after: appliedRemoteBans)
        appliedRemoteBans = upTo
        for ban in bans { pipeline.impose(ban, now: now) }
    }

    private func applyPolicyIfPosted() {
        // Through the optional, not a binding: a binding is a copy, a retain and a release every loop turn.
        guard let generation = mailbox?.currentGeneration, generation != policyGeneration, let mailbox else { return }
        policyGeneration = generation
        let policy = mailbox.read()
        pipeline.apply(security: policy.security, rateLimit: policy.rateLimit)
        // New TLS handshakes use the reloaded certificate; established sessions keep the one they started with.
        streams?.tlsContext = policy.tls
    }

    /// Hands a copy of the counters to the metrics board, at most every 100 ms: never per message.
    private func publishIfDue(now: UInt64 = MonotonicClock.milliseconds(), force: Bool = false) {
        guard let board else { return }
        guard force || now - lastPublished >= 100 else { return }
        lastPublished = now
        if let capture = pipeline.capture {
            pipeline.counters.capturesSent = capture.sent
            pipeline.counters.capturesDropped = capture.dropped + capture.skipped
        }
        pipeline.counters.auditLinesLost = pipeline.auditLinesLost
        var snapshot = pipeline.publishedCounters.snapshot()
        snapshot.busyRatio = loopClock.busyRatio(now: MonotonicClock.nanoseconds())
        board.publish(worker: index, snapshot)
    }

    // MARK: io_uring path

    private func runRing(_ ring: URing, until stop: StopSignal) throws(WorkerFailure) {
        let options = configuration.uring
        var batchWait = BatchWait(windowMicroseconds: options.batchWaitMicroseconds, now: MonotonicClock.nanoseconds(),
                                  threadCPU: ThreadCPUClock.nanoseconds())
        while !stop.isStopped {
            if handoverHasNews, try followHandover(ring: ring) { break }
            // Sparse traffic, or clients waiting for our answers: sleep until the first completion (waking for timers,
            // and for stop every 200 ms). Dense traffic: collect a batch for at most the window (BatchWait).
            let batched = batchWait.batches
            let waitStarted = MonotonicClock.nanoseconds()
            let count = batched
                ? ring.wait(completions: options.batchSize, timeoutMicroseconds: options.batchWaitMicroseconds)
                : ring.wait(completions: 1, timeoutMicroseconds: idleWaitMicroseconds())
            let woke = MonotonicClock.nanoseconds()
            loopClock.waited(from: waitStarted, to: woke)
            batchWait.woke(batched: batched, slept: woke &- waitStarted, events: count, now: woke,
                           threadCPU: ThreadCPUClock.nanoseconds)
            pipeline.clock = woke
            let now = woke / 1_000_000
            publishIfDue(now: now)
            applyPolicyIfPosted()
            // Before the batch: a ban another edge started applies to the requests that woke us.
            exchangeBans(now: now)
            streams?.maintain(now: now)
            maintainUpstreams(now: now)
            try retryPendingRearms(ring, now: now)
            for i in 0..<count {
                let event = ring.event(i)
                dispatch(event)
                ring.recycle(event)
                if event.needsRearm { rearm(event, on: ring) }
            }
            let batchDone = pipeline.clock / 1_000_000  // when the last message was done (or we woke)
            pipeline.fireTransactionTimers(now: batchDone, sink: self)
            pipeline.capture?.flushIfDue(now: batchDone)
            if let injectedFault, pipeline.counters.received > 0 { try meet(injectedFault) }
        }
    }

    private func dispatch(_ event: URingEvent) {
        switch event.kind {
        case .datagram:
            pipeline.counters.received += 1
            if event.truncated {
                pipeline.counters.truncated += 1
            } else if let payload = event.payload, let source = event.source {
                receiveDatagram(payload, from: source)
            }
        case .invalidDatagram:
            pipeline.counters.truncated += 1
        case .outOfBuffers:
            pipeline.counters.receiveBufferExhaustion += 1
        case .receiveError:
            // The upstream socket's receive fails once per queued ICMP error: read the queue now (before the
            // receive is armed again) and tell the health monitor which upstream refused.
            if event.socketTag != DatagramSockets.publicTag { takeUnreachableUpstreams(on: sockets.socket(tag: event.socketTag)) }
        case .sendFailed:
            pipeline.counters.sendFailures += 1
        case .accepted:
            streams?.accept(event, sink: self)
        case .streamData:
            streams?.receive(event, sink: self)
        case .streamSent:
            streams?.sent(event)
        case .connected:
            streams?.connected(event)
        }
    }

    private func meet(_ fault: InjectedFault) throws(WorkerFailure) {
        switch fault {
        case .workerFailure:
            throw WorkerFailure(description: "worker \(index): injected failure (SIPEDGE_TEST_FAULT=worker-failure)")
        case .workerTrap:
            preconditionFailure("worker \(index): injected trap (SIPEDGE_TEST_FAULT=worker-trap)")
        }
    }

    /// A multishot request ended (the kernel does that under pressure): queue it again.
    private func rearm(_ event: URingEvent, on ring: URing) {
        switch event.kind {
        case .accepted:
            streams?.acceptEnded(event)
        case .streamData:
            streams?.receiveEnded(event)
        case .datagram, .invalidDatagram, .outOfBuffers, .receiveError:
            guard !receivesStopped.contains(event.socketTag) else { return }
            armDatagramReceive(tag: event.socketTag, on: ring, now: MonotonicClock.milliseconds())
        case .sendFailed, .streamSent, .connected:
            break
        }
    }

    private func armDatagramReceive(tag: UInt32, on ring: URing, now: UInt64) {
        do {
            try ring.armReceive(on: sockets.socket(tag: tag), tag: tag)
            pendingRearms.armed(tag)
        } catch {
            pendingRearms.failed(tag, now: now)
        }
    }

    /// Datagram receives that could not be armed again are retried every turn; one still unarmed past the limit
    /// fails the worker.
    private func retryPendingRearms(_ ring: URing, now: UInt64) throws(WorkerFailure) {
        guard !pendingRearms.isEmpty else { return }
        for tag in pendingRearms.tags { armDatagramReceive(tag: tag, on: ring, now: now) }
        if let tag = pendingRearms.overdue(now: now) {
            throw WorkerFailure(description: "worker \(index): the receive on its \(tag == DatagramSockets.publicTag ? "public" : "upstream") UDP socket could not be armed again for \(pendingRearms.limit) ms")
        }
    }

    /// On stop: submit the sends still queued in the ring and wait (at most 200 ms) for them to complete, so the
    /// last answers leave before the ring is torn down. New datagrams are no longer handled.
    private func drainSends(_ ring: URing) {
        for _ in 0..<10 where ring.sendsInFlight > 0 {
            let count = ring.wait(completions: 1, timeoutMicroseconds: 20_000)
            for i in 0..<count {
                let event = ring.event(i)
                if event.kind == .sendFailed { pipeline.counters.sendFailures += 1 }
                ring.recycle(event)
            }
        }
    }

    // MARK: Zero-downtime restart

    /// Once per loop turn on the ring: adopt upstream sockets a drained predecessor left, start draining when a
    /// successor has taken over, and say (true) when the drain is over. The last turn hands this worker's upstream
    /// sockets to the successor.
    /// Sockets handed over since last seen, or a drain asked for: two atomic loads, through the optional rather than
    /// a binding of it (a retain and a release every loop turn).
    private var handoverHasNews: Bool {
        guard let generation = handover?.legacyUpstreamGeneration else { return false }
        return generation != appliedLegacyGeneration || handover?.drainingUntil != 0
    }

    private func followHandover(ring: URing) throws(WorkerFailure) -> Bool {
        guard let handover else { return false }
        if handover.legacyUpstreamGeneration != appliedLegacyGeneration {
            // A receive that cannot be armed now is retried every turn (pendingRearms), like our own sockets'.
            adoptLegacyUpstreams(handover) { _, tag in
                armDatagramReceive(tag: tag, on: ring, now: MonotonicClock.milliseconds())
                return true
            }
        }
        let deadline = handover.drainingUntil
        guard deadline != 0 else { return false }
        if !draining {
            draining = true
            receivesStopped.insert(DatagramSockets.publicTag)
            try? ring.cancelReceive(tag: DatagramSockets.publicTag)
            streams?.stopAccepting()
        }
        guard isDrained(deadline: deadline) else { return false }
        // Stop reading the upstream sockets, handle what they had already delivered, then leave them to the
        // successor: datagrams arriving meanwhile wait in the sockets.
        for tag in sockets.upstreamTags {
            receivesStopped.insert(tag)
            try? ring.cancelReceive(tag: tag)
        }
        var open = Set(sockets.upstreamTags)
        let until = MonotonicClock.milliseconds() + 200
        while !open.isEmpty, MonotonicClock.milliseconds() < until {
            let count = ring.wait(completions: 1, timeoutMicroseconds: 20_000)
            pipeline.clock = MonotonicClock.nanoseconds()
            for i in 0..<count {
                let event = ring.event(i)
                dispatch(event)
                ring.recycle(event)
                if event.needsRearm, event.kind != .accepted, event.kind != .streamData { open.remove(event.socketTag) }
            }
        }
        returnUpstreamSockets(to: handover)
        return true
    }

    /// The recvmmsg path's turn of ``followHandover(ring:)``.
    private func followHandover(readiness: ReadinessDriver) -> Bool {
        guard let handover else { return false }
        if handover.legacyUpstreamGeneration != appliedLegacyGeneration {
            adoptLegacyUpstreams(handover) { socket, tag in
                (try? readiness.poll.add(socket, bit: Int(tag - DatagramSockets.legacyTagBase) + 2)) != nil
            }
        }
        let deadline = handover.drainingUntil
        guard deadline != 0 else { return false }
        if !draining {
            draining = true
            readiness.poll.remove(sockets.publicSocket)
        }
        guard isDrained(deadline: deadline) else { return false }
        returnUpstreamSockets(to: handover)
        return true
    }

    /// Adopts the upstream sockets a drained predecessor left for this worker, each under the next receive tag,
    /// if `watch` (the driver arming its receive) takes it; a socket not watched is closed. Their ports become ours
    /// in Route and Via (the predecessor's Path and Record-Route entries name them).
    private func adoptLegacyUpstreams(_ handover: WorkerHandover, watch: (UDPSocket, UInt32) -> Bool) {
        appliedLegacyGeneration = handover.legacyUpstreamGeneration
        for descriptor in handover.takeLegacyUpstreams(worker: index) {
            guard sockets.legacyUpstreams.count < DatagramSockets.maxLegacyUpstreams,
                  let socket = try? UDPSocket(adopting: descriptor, expecting: nil) else {
                Descriptor.close(descriptor)
                continue
            }
            let tag = DatagramSockets.legacyTagBase + UInt32(sockets.legacyUpstreams.count)
            sockets.legacyUpstreams.append(socket)
            guard watch(socket, tag) else {
                sockets.legacyUpstreams.removeLast()
                continue
            }
            pipeline.proxy.acceptFormerInternalPort(socket.localAddress.port)
        }
    }

    /// Drained: no client connection and no transaction left, or the deadline passed.
    private func isDrained(deadline: UInt64) -> Bool {
        if MonotonicClock.milliseconds() >= deadline { return true }
        return (streams?.clientConnections ?? 0) == 0 && (pipeline.transactions?.liveTransactions ?? 0) == 0
    }

    /// Copies of this worker's upstream sockets (its own and any it adopted) for the successor, which adopts them
    /// so that Path and Record-Route entries naming their ports keep reaching a process.
    private func returnUpstreamSockets(to handover: WorkerHandover) {
        let copies = ([sockets.upstreamSocket] + sockets.legacyUpstreams).compactMap { Descriptor.duplicate($0.descriptor) }
        handover.returnUpstreams(worker: index, descriptors: copies)
    }

    // MARK: recvmmsg path

    private func runReadiness(_ readiness: ReadinessDriver, until stop: StopSignal) {
        while !stop.isStopped {
            if handoverHasNews, followHandover(readiness: readiness) { break }
            let waitStarted = MonotonicClock.nanoseconds()
            let ready = readiness.poll.wait(timeoutMilliseconds: Int32((idleWaitMicroseconds() + 999) / 1_000))
            let woke = MonotonicClock.nanoseconds()
            loopClock.waited(from: waitStarted, to: woke)
            pipeline.clock = woke
            exchangeBans(now: woke / 1_000_000)
            if ready & 1 != 0 { drain(sockets.publicSocket, readiness) }
            if ready & 2 != 0 { drain(sockets.upstreamSocket, readiness) }
            for (offset, socket) in sockets.legacyUpstreams.enumerated() where ready & (4 << offset) != 0 {
                drain(socket, readiness)
            }
            // The housekeeping after the batch goes by when the last message was done: no clock read of its own.
            let now = pipeline.clock / 1_000_000
            publishIfDue(now: now)
            applyPolicyIfPosted()
            maintainUpstreams(now: now)
            pipeline.fireTransactionTimers(now: now, sink: self)
            pipeline.counters.sendFailures += readiness.flush(sockets)
            pipeline.capture?.flushIfDue(now: now)
        }
    }

    private func drain(_ socket: UDPSocket, _ readiness: ReadinessDriver) {
        // Bounded: at most 16 batches per wake-up, so one busy socket cannot starve the other.
        for round in 0..<16 {
            let count = readiness.batch.receive(from: socket)
            if count == 0 {
                // Woken with nothing to read: a queued ICMP error (which keeps the socket signalling until read).
                if round == 0, socket !== sockets.publicSocket { takeUnreachableUpstreams(on: socket) }
                return
            }
            for i in 0..<count {
                pipeline.counters.received += 1
                if readiness.batch.isTruncated(i) {
                    pipeline.counters.truncated += 1
                    continue
                }
                readiness.batch.withDatagram(i) { bytes, source in
                    if let source { receiveDatagram(bytes, from: source) }
                }
            }
            // One sendmmsg per socket for everything this batch produced.
            pipeline.counters.sendFailures += readiness.flush(sockets)
        }
    }

    // MARK: Both paths

    /// How long an idle loop may sleep: 200 ms (stop and policy checks), or less when a transaction timer or a
    /// capture flush is due sooner (the timer wheel is driven by this wait: no timer thread, no timerfd). Timers may fire up to
    /// ``timerSlackMilliseconds`` late, so that timers due close together take one wake-up, not one each.
    private func idleWaitMicroseconds() -> UInt32 {
        let timers = pipeline.transactions?.nextDeadline
        let captures = pipeline.capture?.nextFlush
        // Every loop turn asks: no array of the two (an allocation per turn).
        guard let deadline = timers.map({ min($0, captures ?? .max) }) ?? captures else { return 200_000 }
        let now = MonotonicClock.milliseconds()
        guard deadline > now else { return 0 }
        return UInt32(min(deadline - now + Self.timerSlackMilliseconds, 200) * 1_000)
    }

    /// Against T1 = 500 ms (the shortest SIP timer) 5 ms is 1%: at 2,000 calls/s it cuts the loop's timer
    /// wake-ups from one per millisecond to one per 5.
    static let timerSlackMilliseconds: UInt64 = 5

    /// Applies a new upstream word from the board (one atomic load when nothing changed); worker 0 first runs the
    /// health checks that may change it.
    private func maintainUpstreams(now: UInt64) {
        // Through the optional, not a binding, on the common turn: a binding is a retain and a release every turn.
        if monitor != nil { runHealthChecks(now: now) }  // worker 0
        guard let word = upstreamBoard?.stateWord, word != appliedUpstreamWord, let upstreamBoard else { return }
        if word >> 48 == appliedUpstreamWord >> 48 {
            pipeline.proxy.upstreams.setUp(bits: word & UpstreamBoard.upMask)
            appliedUpstreamWord = word
            return
        }
        // A new membership (DNS): the whole set, and pooled connections for new members (removed ones close).
        let (membership, current) = upstreamBoard.membershipAndWord()
        var set = UpstreamSet(membership.members)
        set.setUp(bits: current & UpstreamBoard.upMask)
        pipeline.proxy.upstreams = set
        streams?.reconcilePool(with: membership.members.map(\.address), now: now)
        appliedUpstreamWord = current
    }

    /// Worker 0: adopt a new membership, count passive failures, send the probes that are due, publish changes.
    private func runHealthChecks(now: UInt64) {
        // Most loop turns have nothing to do here: decide that from three words, without touching the monitor (or
        // binding the board: a retain and a release every turn).
        guard let word = upstreamBoard?.stateWord, let generation = monitor?.generation,
            let due = monitor?.nextRoundDue
        else { return }
        let adopting = word >> 48 != generation & 0xFFFF
        guard adopting || now >= due || upstreamBoard?.hasFailures == true else { return }
        guard var monitor, let board = upstreamBoard else { return }
        // Moved out while changed (put back below), so its arrays stay uniquely referenced: no copy.
        self.monitor = nil
        var changes: [(EndpointAddress, Bool)] = []
        var dirty = false
        if adopting {
            let (membership, current) = board.membershipAndWord()
            monitor.adopt(membership, upBits: current & UpstreamBoard.upMask)
            dirty = true
        }
        for upstream in board.takeFailures() { monitor.failed(upstream, changes: &changes) }
        for probe in monitor.startRoundIfDue(now: now, changes: &changes) {
            pipeline.proxy.buildProbe(to: probe.address, callID: probe.callID, sequence: probe.sequence)
            let flow = Flow(transport: configuration.proxy.upstreamTransport, address: probe.address)
            // No pooled connection up to send it on: that is the answer already.
            if !deliver(pipeline.proxy.output, to: flow) { monitor.failed(probe.address, changes: &changes) }
            dirty = true
        }
        self.monitor = monitor
        if dirty || !changes.isEmpty {
            board.publish(bits: monitor.upBits, generation: monitor.generation, changes: changes, ready: monitor.isReady)
        }
    }

    private func takeUnreachableUpstreams(on socket: UDPSocket) {
        guard let upstreamBoard else { return }
        for destination in socket.takeUnreachableDestinations()
        where proxy.isUpstream(destination) {
            upstreamBoard.reportFailure(destination)
        }
    }

    private func receiveDatagram(_ bytes: PacketBytes, from source: EndpointAddress) {
        if Self.isKeepalive(bytes) {
            pipeline.counters.keepalives += 1
        } else {
            pipeline.handle(bytes, from: .udp(source), sink: self)
        }
    }

    /// RFC 5626 keep-alive: a datagram of only CRLFs.
    static func isKeepalive(_ bytes: PacketBytes) -> Bool {
        guard bytes.count > 0, bytes.count <= 4 else { return false }
        for i in 0..<bytes.count where bytes[i] != 0x0D && bytes[i] != 0x0A { return false }
        return true
    }
}

extension EdgeWorker: FlowSink {
    /// Sends `bytes` down `flow`: a pooled connection when it is a TCP/TLS upstream, a UDP address (through the
    /// upstream socket when it is an upstream), or one of this worker's connections. False when the flow is gone
    /// (or belongs to another worker).
    func deliver(_ bytes: PacketBytes, to flow: Flow) -> Bool {
        // A reply that could not be built safely is empty: nothing goes out.
        guard bytes.count > 0 else { return false }
        let toUpstream = proxy.isUpstream(flow.address)
        guard send(bytes, to: flow, toUpstream: toUpstream) else { return false }
        pipeline.counters.countSent(bytes, toUpstream: toUpstream ? flow.address : nil)
        pipeline.capture?.sent(bytes, to: flow, isUpstream: toUpstream)
        return true
    }

    private func send(_ bytes: PacketBytes, to flow: Flow, toUpstream: Bool) -> Bool {
        if toUpstream, let streams, !streams.pool.isEmpty {  // isPooled, with the upstream test already made
            guard let connection = streams.pooledConnection(to: flow.address) else { return false }
            return streams.send(bytes, on: connection)
        }
        guard flow.transport.isStream else {
            let lost = driver.sendDatagram(bytes, to: flow.address, viaUpstream: toUpstream, sockets: sockets)
            pipeline.counters.sendFailures += lost
            return lost == 0
        }
        guard let streams, let connection = streams.connection(for: flow) else { return false }
        return streams.send(bytes, on: connection)
    }

    func probeAnswered(callID: String, status: Int) {
        guard var monitor, let upstreamBoard else { return }
        self.monitor = nil
        var changes: [(EndpointAddress, Bool)] = []
        monitor.answered(callID: callID, status: status, changes: &changes)
        self.monitor = monitor
        upstreamBoard.publish(bits: monitor.upBits, generation: monitor.generation, changes: changes,
                              ready: monitor.isReady)
    }

    func upstreamFailed(_ upstream: EndpointAddress) {
        upstreamBoard?.reportFailure(upstream)
    }

    func isPooled(_ upstream: EndpointAddress) -> Bool {
        guard let streams, !streams.pool.isEmpty else { return false }
        return proxy.isUpstream(upstream)
    }
}
