public import ArgumentParser
import Foundation
import Logging
import SIPBytes
import SIPConfig
import SIPParsing
import SIPProxyCore
import SIPTransport
import SIPSettings
import SIPUring
import SIPAdmin
import SIPMetrics
import SIPSharedState
import SIPSecurity
import SIPLocks

#if canImport(Glibc)
import Glibc
#endif

/// `sip-edge run` (the default): starts the UDP workers and forwards until SIGTERM or SIGINT.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the proxy (the default). With no options it uses the embedded defaults.",
        discussion: """
            Embedded defaults: listen udp:127.0.0.1:5060, upstream sip:127.0.0.1:5070, one worker per core, \
            Record-Route on.
            """
    )

    @Option(help: "YAML configuration file (see `sip-edge config --defaults`). Flags override it.")
    var config: String?

    @Option(help: "Public listening address, udp:HOST:PORT. Default: udp:127.0.0.1:5060.")
    var listen: String?

    @Option(help: "Upstream SIP core, sip:HOST:PORT or sip:NAME[:PORT] (repeatable; Call-ID hashing over those up). Default: sip:127.0.0.1:5070.")
    var upstream: [String] = []

    @Option(help: "Address written into Via and Record-Route, HOST:PORT. Default: the listening address.")
    var advertise: String?

    @Option(help: "Worker threads. Default: one per core.")
    var workers: Int?

    @Flag(inversion: .prefixedNo, help: "Add Record-Route to dialog-creating requests. Default: on.")
    var recordRoute: Bool?

    @Option(help: "Data path: auto (io_uring if the kernel allows, else recvmmsg), io-uring, recvmmsg.")
    var dataPath: DataPath?

    @Option(help: "Forwarding: stateless, or transaction (absorb retransmissions, retransmit toward the core, fail over). Default: stateless.")
    var mode: ProxyMode?

    @Option(help: "Admin HTTP address HOST:PORT for /metrics and /health, or 'off'. Default: 127.0.0.1:9090.")
    var admin: String?

    @Option(help: "Redis that edges share bans through, redis://HOST:PORT/DB. Default: off.")
    var redis: String?

    /// Defaults, then the file, then the flags.
    func effectiveConfiguration() throws -> EdgeConfiguration {
        var configuration = EdgeConfiguration.defaults()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else {
                throw ValidationError("--config: cannot read \(config)")
            }
            configuration = try EdgeConfiguration.parse(yaml: String(decoding: data, as: UTF8.self), over: configuration)
        }
        try configuration.applyEnvironment(ProcessInfo.processInfo.environment)
        if let listen { configuration.listen = try EdgeConfiguration.endpoint(listen, scheme: "udp", path: "--listen") }
        if !upstream.isEmpty {
            configuration.upstreams = try upstream.map { try EdgeConfiguration.upstreamTarget($0, path: "--upstream") }
        }
        if let advertise {
            configuration.advertise = try EdgeConfiguration.endpoint(advertise, scheme: nil, path: "--advertise")
        }
        if let workers {
            guard (1...256).contains(workers) else { throw ConfigError("--workers", "must be 1...256") }
            configuration.workers = workers
        }
        if let recordRoute { configuration.recordRoute = recordRoute }
        if let dataPath { configuration.dataPath = dataPath }
        if let mode { configuration.transactions.mode = mode }
        if let admin {
            configuration.admin = admin == "off" ? nil : try EdgeConfiguration.endpoint(admin, scheme: nil, path: "--admin")
        }
        if let redis { configuration.sharedState.redis = try EdgeConfiguration.redisTarget(redis, path: "--redis") }
        try configuration.validate()
        return configuration
    }

    func run() throws {
        let launch = SuccessorLaunch()
        // Admin clients and stream connections each hold a descriptor; 1,024 (the usual soft limit) is too few.
        raiseOpenFileLimitToHardLimit()
        let edge: EdgeConfiguration
        do {
            edge = try effectiveConfiguration()
        } catch let error as ConfigError {
            Self.startLogging(configuredLevel: "info")
            log("sip-edge: configuration error: \(error)", level: .error)
            throw ExitCode(2)
        }
        Self.startLogging(configuredLevel: edge.logLevel)
        // Started by a running sip-edge on SIGUSR2: its sockets come first, before anything binds.
        var inherited: InheritedState?
        if let descriptor = ProcessInfo.processInfo.environment[HandoverChannel.inheritedVariable] {
            do {
                inherited = try InheritedState.receive(descriptorText: descriptor)
            } catch {
                log("sip-edge: handover: \(error)", level: .error)
                throw ExitCode(2)
            }
        }
        let secret = inherited?.branchSecret ?? SecureRandom.uint64()
        let flowKey: [UInt8]
        if let path = edge.flowKeyFile {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                  text.trimmingCharacters(in: .whitespacesAndNewlines).utf8.count >= 16 else {
                log("sip-edge: flow.key_file: cannot read \(path), or it holds fewer than 16 characters", level: .error)
                throw ExitCode(2)
            }
            flowKey = Array(text.trimmingCharacters(in: .whitespacesAndNewlines).utf8)
        } else if let configured = edge.flowKey {
            flowKey = Array(configured.utf8)
        } else if let inherited {
            // The predecessor's random key: the flow tokens it issued (in Path, Record-Route) stay valid.
            flowKey = inherited.flowKey
        } else {
            flowKey = SecureRandom.bytes(32)
            Self.logger.notice("flow.key not set: flow tokens are signed with a random key for this run")
        }
        if let inherited, inherited.flowKey != flowKey {
            Self.logger.notice("flow.key differs from the predecessor's: flow tokens it issued no longer verify")
        }
        var upstreamTLS: TLSContext?
        if edge.upstreamTransport == .tls {
            do {
                upstreamTLS = try TLSContext(client: edge.upstreamTLS)
            } catch {
                log("sip-edge: upstream_tls: \(error)", level: .error)
                throw ExitCode(2)
            }
        }
        var workerConfiguration = edge.workerConfiguration(branchSecret: secret,
                                                     cores: ProcessInfo.processInfo.activeProcessorCount,
                                                     flowKey: flowKey, upstreamTLS: upstreamTLS)
        if let fault = ProcessInfo.processInfo.environment["SIPEDGE_TEST_FAULT"] {
            guard let injected = InjectedFault(rawValue: fault) else {
                log("sip-edge: SIPEDGE_TEST_FAULT must be one of \(InjectedFault.allCases.map(\.rawValue).joined(separator: ", "))",
                    level: .error)
                throw ExitCode(2)
            }
            workerConfiguration.injectedFault = injected
            Self.logger.warning("SIPEDGE_TEST_FAULT=\(fault): worker 0 will fail on its first message")
        }
        let configuration = workerConfiguration
        let workers = configuration.workers
        if let inherited, inherited.workers != workers {
            // Path and Record-Route entries name each worker's upstream port: the predecessor's workers' sockets
            // must each find a worker here.
            let reason = "the running process has \(inherited.workers) workers, this configuration \(workers): a worker count changes only with a full restart"
            inherited.refuse(reason)
            log("sip-edge: handover: \(reason)", level: .error)
            throw ExitCode(2)
        }
        let listenAddress = configuration.listen
        let upstreams = edge.upstreams

        // Block the signals we handle before any thread starts, so only the wait below sees them.
        var signals = ProcessSignals()

        // Refuse ports another process holds, before anything binds (see PortClaim for how and its race). A
        // successor handed its sockets by a zero-downtime restart would pass `.inherited`; none exists yet.
        var listeners = [PublicListener(.udp, listenAddress)]
        if configuration.dataPath != .recvmmsg {
            if configuration.streams.tcpEnabled { listeners.append(PublicListener(.tcp, listenAddress)) }
            if let tls = configuration.tlsListen { listeners.append(PublicListener(.tls, tls)) }
            for webSocket in configuration.webSocket.listeners {
                listeners.append(PublicListener(webSocket.isSecure ? .wss : .ws, webSocket.address))
            }
        }
        let startupLock: StartupLock?
        do {
            // Sockets a predecessor handed over are in use by design; only the new ones are claimed.
            let fresh = listeners.filter { inherited?.inherits(SocketRole(rawValue: $0.transport.rawValue) ?? .udp) != true }
            startupLock = try PortClaim.claim(fresh, ownership: .fresh)
        } catch {
            inherited?.refuse("\(error)")
            log("sip-edge: \(error)", level: .error)
            throw ExitCode(2)
        }

        let board = MetricsBoard(workers: workers)
        let upstreamBoard = UpstreamBoard(
            members: edge.numericUpstreams, drainMilliseconds: UInt64(edge.upstreamDNS.drainSeconds) * 1_000,
            onChange: { upstream, isUp in
                Self.logger.info("upstream \(upstream) is \(isUp ? "up" : "down")",
                                 metadata: ["upstream": "\(upstream)", "state": "\(isUp ? "up" : "down")"])
            })
        let sharedBans: SharedBans? = edge.sharedState.redis == nil ? nil
            : SharedBans(intervalMilliseconds: UInt64(edge.sharedState.rateIntervalMilliseconds),
                         busiestSources: edge.sharedState.busiestSources)
        var sharedStateClient: SharedStateClient?
        if let sharedBans {
            var settings = edge.sharedState
            if let path = edge.redisPasswordFile {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    log("sip-edge: shared_state.password_file: cannot read \(path)", level: .error)
                    throw ExitCode(2)
                }
                settings.password = text.trimmingCharacters(in: .whitespacesAndNewlines)
            } else if let password = ProcessInfo.processInfo.environment["SIPEDGE_REDIS_PASSWORD"], !password.isEmpty {
                settings.password = password
            }
            // The per-source window limit (other than REGISTER) scaled to the sharing interval.
            let perInterval = edge.rateLimit.enabled
                ? max(1, Int(edge.rateLimit.requestsPerWindow) * edge.sharedState.rateIntervalMilliseconds
                      / max(1, Int(edge.rateLimit.windowMilliseconds))) : 0
            sharedStateClient = SharedStateClient(settings: settings, bans: sharedBans,
                                                  edgeID: String(SecureRandom.uint64(), radix: 16),
                                                  sharedLimitPerInterval: perInterval,
                                                  log: { Self.logger.notice("\($0)") })
        }
        var adminServer: AdminServer?
        var adminHandle: AdminHandle?
        if let adminAddress = edge.admin {
            let listener: TCPListener
            do {
                if let descriptor = inherited?.admin,
                   let adopted = try? TCPListener(adopting: descriptor, expecting: adminAddress),
                   adopted.localAddress == adminAddress {
                    listener = adopted
                } else {
                    listener = try TCPListener(binding: adminAddress)
                }
            } catch {
                inherited?.refuse("admin \(adminAddress): \(error)")
                // An admin address we cannot have is a start-up failure like a public one: name it, exit 2.
                let reason = error.bindTarget == nil ? "admin server: \(error)"
                    : "\(ListenerError(listener: "admin \(adminAddress)", errno: error.errno))"
                log("sip-edge: \(reason)", level: .error)
                throw ExitCode(2)
            }
            let limits = AdminLimits(requestTimeout: .milliseconds(edge.adminRequestTimeoutMilliseconds),
                                     maxConnections: edge.adminMaxConnections)
            let client = sharedStateClient
            let server = AdminServer(board: board, upstreamStatus: { upstreamBoard.report }, limits: limits,
                                     extraMetrics: { Self.sharedStateMetrics(client) })
            adminServer = server
            adminHandle = AdminHandle(descriptor: listener.descriptor, stop: { server.stop() })
            Thread {
                ThreadName.setCurrent("sip-edge-admin")
                server.serve(listener)
            }.start()
            log("sip-edge: admin on http://\(adminAddress)/metrics")
        }

        var tlsContext: TLSContext?
        if edge.servesTLS {
            do {
                tlsContext = try TLSContext(server: edge.tls)
            } catch {
                log("sip-edge: tls: \(error)", level: .error)
                throw ExitCode(2)
            }
        }
        let mailbox = PolicyMailbox(Policy(security: edge.security, rateLimit: edge.rateLimit, tls: tlsContext))
        let handover = WorkerHandover(inherited: inherited?.sockets ?? [:])
        let stop = StopSignal()
        let started = WorkerStartup(expected: workers)
        if edge.upstreams.contains(where: { $0.address == nil }) {
            do {
                try startResolver(edge, board: upstreamBoard, stop: stop, started: started)
            } catch {
                log("sip-edge: upstream_dns: \(error)", level: .error)
                throw ExitCode(2)
            }
        }
        if let sharedStateClient {
            let thread = Thread {
                ThreadName.setCurrent("sip-edge-redis")
                sharedStateClient.run(until: stop)
            }
            thread.name = "sip-edge-shared-state"
            thread.start()
        }
        var threads: [Thread] = []
        for index in 0..<workers {
            let thread = Thread {
                ThreadName.setCurrent("sip-edge-w\(index)")
                do {
                    let worker = try EdgeWorker(index: index, configuration: configuration, board: board,
                                               mailbox: mailbox, upstreams: upstreamBoard, sharedBans: sharedBans,
                                               handover: handover)
                    started.report(nil, path: worker.dataPath)
                    if index == 0, configuration.workers > 1, started.waitForAll().isEmpty {
                        // Every socket of the group is bound now: steer by client address from here on. Without
                        // it the kernel's own 4-tuple hash still spreads the load, so a failure is only logged.
                        do {
                            try worker.attachSourceSteering(groupSize: configuration.workers)
                        } catch {
                            Self.logger.warning("source steering off: \(error)")
                        }
                    }
                    do {
                        try worker.run(until: stop)
                    } catch {
                        // A worker that cannot read its sockets any more must not leave the process running deaf:
                        // stop everything (SIGTERM wakes the main thread's wait) and exit with an error.
                        Self.logger.critical("\(error)")
                        started.failed()
                        ProcessSignals.requestStop()
                    }
                    started.finished(index: index, counters: worker.counters)
                } catch {
                    // A failed bind names its listener, the way the claim does ("udp 127.0.0.1:5060 is in use…").
                    let listener = (error as? SystemCallError).flatMap(ListenerError.init)
                    started.report(listener.map { "\($0)" } ?? "worker \(index): \(error)", path: nil)
                    started.finished(index: index, counters: nil)
                }
            }
            thread.name = "sip-edge-worker-\(index)"
            thread.start()
            threads.append(thread)
        }
        let errors = started.waitForAll()
        startupLock?.release()
        if !errors.isEmpty {
            stop.stop()
            started.waitForFinish()
            var logged = Set<String>()
            for error in errors where logged.insert(error).inserted { log("\(error)", level: .error) }
            inherited?.refuse(errors.joined(separator: "; "))
            // A listener a worker could not bind (only "worker N: …" is anything else, e.g. io_uring demanded and
            // refused, which stays 1) is a start-up refusal like the claim's: 2.
            throw ExitCode(errors.contains { !$0.hasPrefix("worker ") } ? 2 : 1)
        }
        var streams = ""
        if started.paths.contains("io-uring") {
            if configuration.streams.tcpEnabled { streams += ", TCP on \(listenAddress)" }
            if let tls = configuration.tlsListen { streams += ", TLS on \(tls)" }
            for webSocket in configuration.webSocket.listeners { streams += ", \(webSocket)" }
        } else if configuration.streams.tcpEnabled || configuration.tlsListen != nil || configuration.webSocket.isEnabled {
            Self.logger.warning("TCP, TLS and WebSocket need io_uring, which this system refuses: serving UDP only")
        }
        log("sip-edge: \(workers) UDP workers (\(started.paths)) on \(listenAddress)\(streams), upstream \(upstreams.map(\.description).joined(separator: ", "))")

        if let inherited {
            let unused = handover.closeUnclaimedInherited()
            // systemd follows the main process to us (NotifyAccess=all) before the predecessor starts to drain.
            ServiceManager.notify("MAINPID=\(getpid())")
            do {
                try inherited.reportReady()
            } catch {
                log("sip-edge: handover: the predecessor did not take our ready: \(error)", level: .error)
            }
            log("sip-edge: handover: serving on the sockets of PID \(inherited.predecessorPID)"
                + (unused > 0 ? " (\(unused) it had that this configuration does not use closed)" : ""))
            let thread = Thread {
                ThreadName.setCurrent("sip-edge-handover")
                inherited.receiveUpstreams(into: handover) { Self.logger.info("\($0)") }
            }
            thread.name = "sip-edge-handover"
            thread.start()
        }
        ServiceManager.notify("READY=1\nSTATUS=\(workers) UDP workers on \(listenAddress)")
        let admin = adminHandle
        waitForStopSignal(&signals, onReload: { reload(running: edge, into: mailbox) }, onUpgrade: {
            launch.start(flowKey: flowKey, branchSecret: secret, workers: workers, handover: handover, admin: admin,
                         settings: edge.handover,
                         started: started, log: { line, level in Self.logger.log(level: level, "\(line)") })
        })
        let successor = launch.successor
        // After a handover the service lives on in the successor: systemd must not see this one stopping.
        if successor == 0 { ServiceManager.notify("STOPPING=1") }
        stop.stop()
        adminServer?.stop()
        let totals = started.waitForFinish()
        if successor != 0 { log("sip-edge: handed over to PID \(successor)") }
        log("sip-edge: stopped; received \(totals.received), forwarded \(totals.forwarded), replied \(totals.replied), parse errors \(totals.parseErrors)")
        if started.anyFailed { throw ExitCode(1) }
    }

    /// `sip_shared_state_up` and the shared-ban counters (the up gauge is exported without Redis too, at 0, so a
    /// dashboard can tell "not configured" from "never scraped" by `sip_shared_state_configured`).
    static func sharedStateMetrics(_ client: SharedStateClient?) -> [(String, String, String, Double)] {
        [
            ("sip_shared_state_configured", "gauge", "1 when shared_state.redis is set.", client == nil ? 0 : 1),
            ("sip_shared_state_up", "gauge", "1 while connected to the shared-state Redis.",
             client?.bans.isConnected == true ? 1 : 0),
            ("sip_shared_bans_published_total", "counter", "Bans this edge started and shared.",
             Double(client?.bansPublished ?? 0)),
            ("sip_shared_bans_received_total", "counter", "Bans other edges started, applied here.",
             Double(client?.bansReceived ?? 0)),
            ("sip_shared_limited_sources_total", "counter",
             "Sources limited for an interval because the edges together saw too many requests from them.",
             Double(client?.sourcesLimitedTogether ?? 0)),
        ]
    }

    /// Starts the resolver thread for upstream names and waits (at most 15 s) for its first answers, so workers
    /// start with the addresses DNS has now. A name that does not resolve yet leaves the edge running, not ready,
    /// retrying; no upstream resolvable for `upstream_dns.give_up_s` stops it with an error.
    private func startResolver(_ edge: EdgeConfiguration, board: UpstreamBoard, stop: StopSignal,
                               started: WorkerStartup) throws {
        let firstAnswer = DispatchSemaphore(value: 0)
        let setupError = Locked<String?>(nil)
        let logLine: @Sendable (String) -> Void = { Self.logger.info("\($0)") }
        let thread = Thread {
            // The resolver blocks on DNS and is not Sendable: it is made, used and dropped on this thread.
            let lookup: DNSResolver
            do {
                lookup = try DNSResolver(servers: edge.upstreamDNS.servers)
            } catch {
                setupError.withLock { $0 = "\(error)" }
                firstAnswer.signal()
                return
            }
            let resolver = UpstreamResolver(
                targets: edge.upstreams, transport: edge.upstreamTransport, lookup: lookup,
                ttlBounds: UInt32(edge.upstreamDNS.minimumTTLSeconds)...UInt32(edge.upstreamDNS.maximumTTLSeconds))
            let first = resolver.resolveAll(now: MonotonicClock.milliseconds(), log: logLine)
            board.resolved(first.members, now: MonotonicClock.milliseconds())
            if !first.unresolved.isEmpty {
                Self.logger.warning("upstreams not resolvable yet, retrying: \(first.unresolved.map(\.description).joined(separator: ", "))")
            }
            firstAnswer.signal()
            let servedToTheEnd = resolver.run(
                until: stop, giveUpAfterMilliseconds: UInt64(edge.upstreamDNS.giveUpSeconds) * 1_000,
                publish: { board.resolved($0.members, now: MonotonicClock.milliseconds()) }, log: logLine,
                eachTurn: { board.expireDrained(now: $0) })
            if !servedToTheEnd {
                Self.logger.critical("no upstream has resolved for \(edge.upstreamDNS.giveUpSeconds) s (upstream_dns.give_up_s): stopping")
                started.failed()
                ProcessSignals.requestStop()
            }
        }
        thread.name = "sip-edge-resolver"
        thread.start()
        _ = firstAnswer.wait(timeout: .now() + 15)
        if let error = setupError.withLock({ $0 }) { throw ConfigError("upstream_dns.servers", error) }
    }

    /// Re-reads the configuration (SIGHUP) and posts the new policy to the workers. A file that does not validate
    /// changes nothing; every changed key the policy does not carry is named as needing a restart (the running
    /// configuration stays the one the process started with, so it is named again until the restart).
    private func reload(running: EdgeConfiguration, into mailbox: PolicyMailbox) {
        guard config != nil else {
            log("sip-edge: SIGHUP: no --config file to reload")
            return
        }
        let next: EdgeConfiguration
        do {
            next = try effectiveConfiguration()
        } catch {
            log("sip-edge: SIGHUP: configuration rejected, keeping the running one: \(error)", level: .error)
            return
        }
        // A new certificate (renewed on disk) takes effect for new handshakes; one that does not load changes
        // nothing, like a configuration that does not validate.
        var tlsContext = mailbox.read().tls
        if running.servesTLS {
            do {
                tlsContext = try TLSContext(server: next.tls)
            } catch {
                log("sip-edge: SIGHUP: tls rejected, keeping the running certificate: \(error)", level: .error)
                return
            }
        }
        mailbox.post(Policy(security: next.security, rateLimit: next.rateLimit, tls: tlsContext))
        let changes = running.changes(to: next)
        log("sip-edge: SIGHUP: \(!running.servesTLS ? "security and rate_limit" : "security, rate_limit and tls certificate") reloaded"
            + (changes.applied.isEmpty ? "" : " (changed: \(changes.applied.joined(separator: ", ")))")
            + (changes.needRestart.isEmpty ? "" : "; restart to apply \(changes.needRestart.joined(separator: ", "))"))
    }

    /// Waits for SIGTERM or SIGINT, feeding systemd's watchdog meanwhile (at half its interval) when it asks for
    /// one. SIGHUP reloads the policy.
    private func waitForStopSignal(_ signals: inout ProcessSignals, onReload: () -> Void, onUpgrade: () -> Void) {
        let watchdog = ServiceManager.watchdogMicroseconds
        let tick = watchdog.map { max($0 / 2, 100_000) } ?? 3_600_000_000
        while true {
            switch signals.wait(microseconds: tick) {
            case .none:
                if watchdog != nil { ServiceManager.notify("WATCHDOG=1") }
            case .reload:
                ServiceManager.notify("RELOADING=1")
                onReload()
                ServiceManager.notify("READY=1")
            case .upgrade:
                onUpgrade()
            case .stop(let received):
                log("sip-edge: signal \(received), stopping")
                return
            }
        }
    }

    private func log(_ line: String, level: Logger.Level = .info) {
        Self.logger.log(level: level, "\(line.hasPrefix("sip-edge: ") ? String(line.dropFirst(10)) : line)")
    }

    /// Structured JSON lines on standard error, at the configured level unless SIPEDGE_LOG says otherwise.
    /// Nothing is logged per message at info: traffic shows in /metrics, refusals in the audit log.
    static func startLogging(configuredLevel: String) {
        let fallback = Logger.Level(rawValue: configuredLevel) ?? .info
        let level = JSONLogHandler.level(environment: ProcessInfo.processInfo.environment, fallback: fallback)
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, logLevel: level) }
    }

    static var logger: Logger { Logger(label: "sip-edge") }
}

/// Start-up handshake between the main thread and the workers: each reports once (nil or an error) when its
/// sockets are bound, and once more when it has stopped.
final class WorkerStartup: Sendable {
    private struct State {
        var reported = 0
        var errors: [String] = []
        var finished = 0
        var totals = WorkerCounters()
        var paths: Set<String> = []
        var failed = false
    }

    private let expected: Int
    private let state = Locked(State())

    init(expected: Int) {
        self.expected = expected
    }

    func report(_ error: String?, path: DataPath?) {
        state.withLock {
            $0.reported += 1
            if let error { $0.errors.append(error) }
            if let path { $0.paths.insert(path.rawValue) }
        }
    }

    /// A worker stopped on an error after it had started.
    func failed() { state.withLock { $0.failed = true } }

    var anyFailed: Bool { state.withLock { $0.failed } }

    /// The data paths the workers chose, for the start-up line.
    var paths: String { state.withLock { $0.paths.sorted().joined(separator: ", ") } }

    func finished(index: Int, counters: WorkerCounters?) {
        state.withLock {
            $0.finished += 1
            if let counters {
                $0.totals.received += counters.received
                $0.totals.forwarded += counters.forwarded
                $0.totals.replied += counters.replied
                $0.totals.parseErrors += counters.parseErrors
            }
        }
    }

    func waitForAll() -> [String] {
        while true {
            let (done, errors) = state.withLock { ($0.reported == expected, $0.errors) }
            if done { return errors }
            usleep(1_000)
        }
    }

    @discardableResult
    func waitForFinish() -> WorkerCounters {
        while true {
            let (done, totals) = state.withLock { ($0.finished == expected, $0.totals) }
            if done { return totals }
            usleep(10_000)
        }
    }
}

extension DataPath: ExpressibleByArgument {}
extension ProxyMode: ExpressibleByArgument {}
