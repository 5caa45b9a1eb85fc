import ArgumentParser
import Foundation
import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPTransport
import Synchronization

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

    @Option(help: "Public listening address, udp:HOST:PORT.")
    var listen = "udp:127.0.0.1:5060"

    @Option(help: "Upstream SIP core, sip:HOST:PORT (repeatable; Call-ID hashing spreads calls).")
    var upstream: [String] = ["sip:127.0.0.1:5070"]

    @Option(help: "Address written into Via and Record-Route, HOST:PORT (default: the listening address).")
    var advertise: String?

    @Option(help: "Worker threads (default: one per core).")
    var workers: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(inversion: .prefixedNo, help: "Add Record-Route to dialog-creating requests.")
    var recordRoute = true

    @Option(help: "Data path: auto (io_uring if the kernel allows, else recvmmsg), io-uring, recvmmsg.")
    var dataPath: DataPath = .auto

    func validate() throws {
        guard workers >= 1 && workers <= 256 else { throw ValidationError("--workers must be 1...256") }
        _ = try Self.endpoint(listen, scheme: "udp", option: "--listen")
        for value in upstream { _ = try Self.endpoint(value, scheme: "sip", option: "--upstream") }
        if let advertise { _ = try Self.endpoint(advertise, scheme: nil, option: "--advertise") }
    }

    /// Parses `scheme:HOST:PORT` (IPv6 hosts in brackets). Names are refused: the data path never resolves.
    static func endpoint(_ text: String, scheme: String?, option: String) throws -> EndpointAddress {
        var rest = Substring(text)
        if let scheme {
            guard rest.hasPrefix(scheme + ":") else { throw ValidationError("\(option) \(text): expected \(scheme):HOST:PORT") }
            rest = rest.dropFirst(scheme.count + 1)
        }
        guard let colon = rest.lastIndex(of: ":"), let port = UInt16(rest[rest.index(after: colon)...]) else {
            throw ValidationError("\(option) \(text): expected HOST:PORT")
        }
        guard let address = EndpointAddress.parse(String(rest[..<colon]), port: port) else {
            throw ValidationError("\(option) \(text): HOST must be a numeric IPv4 or IPv6 address")
        }
        return address
    }

    func run() throws {
        let listenAddress = try Self.endpoint(listen, scheme: "udp", option: "--listen")
        let upstreams = try upstream.map { try Self.endpoint($0, scheme: "sip", option: "--upstream") }
        let advertised = try advertise.map { try Self.endpoint($0, scheme: nil, option: "--advertise") } ?? listenAddress
        var secret: UInt64 = 0
        arc4random_buf(&secret, MemoryLayout<UInt64>.size)
        let configuration = WorkerConfiguration(
            listen: listenAddress,
            proxy: ProxyConfiguration(advertised: advertised, upstreams: upstreams, recordRoute: recordRoute,
                                      branchSecret: secret),
            dataPath: dataPath,
            workers: workers
        )

        // Block the stop signals before any thread starts, so only sigwait below sees them.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGTERM)
        sigaddset(&signals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let stop = StopSignal()
        let started = WorkerStartup(expected: workers)
        var threads: [Thread] = []
        for index in 0..<workers {
            let thread = Thread {
                do {
                    let worker = try UDPWorker(index: index, configuration: configuration)
                    started.report(nil, path: worker.dataPath)
                    if index == 0, configuration.workers > 1, started.waitForAll().isEmpty {
                        // Every socket of the group is bound now: steer by client address from here on. Without
                        // it the kernel's own 4-tuple hash still spreads the load, so a failure is only logged.
                        do {
                            try worker.attachSourceSteering(groupSize: configuration.workers)
                        } catch {
                            FileHandle.standardError.write(Data("sip-edge: source steering off: \(error)\n".utf8))
                        }
                    }
                    worker.run(until: stop)
                    started.finished(index: index, counters: worker.counters)
                } catch {
                    started.report("worker \(index): \(error)", path: nil)
                    started.finished(index: index, counters: nil)
                }
            }
            thread.name = "sip-edge-udp-\(index)"
            thread.start()
            threads.append(thread)
        }
        let errors = started.waitForAll()
        if !errors.isEmpty {
            stop.stop()
            started.waitForFinish()
            for error in errors { log("error: \(error)") }
            throw ExitCode(1)
        }
        log("sip-edge: \(workers) UDP workers (\(started.paths)) on \(listenAddress), upstream \(upstreams.map(\.description).joined(separator: ", "))")

        var received: Int32 = 0
        sigwait(&signals, &received)
        log("sip-edge: signal \(received), stopping")
        stop.stop()
        let totals = started.waitForFinish()
        log("sip-edge: stopped; received \(totals.received), forwarded \(totals.forwarded), replied \(totals.replied), parse errors \(totals.parseErrors)")
    }

    private func log(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
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
    }

    private let expected: Int
    private let state = Mutex(State())

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
