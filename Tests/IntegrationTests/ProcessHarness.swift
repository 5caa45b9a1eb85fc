import Foundation
import SIPTestSupport
import Testing

/// Starts the real peers the integration tests need on 127.0.0.1 and stops them by PID.
enum ProcessHarness {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Where this `swift test` run's products are: the directory of the test bundle running now, so a sanitizer
    /// build (`--scratch-path .build/tsan`) tests its own sip-edge.
    static let productsDirectory: URL = {
        if let running = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let directory = URL(fileURLWithPath: running).deletingLastPathComponent()
            if FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("sip-edge").path) {
                return directory
            }
        }
        return repositoryRoot.appendingPathComponent(".build/debug")
    }()

    /// The sip-edge binary built by this `swift test` run.
    static var sipEdgeBinary: URL {
        productsDirectory.appendingPathComponent("sip-edge")
    }

    /// The seccomp wrapper that refuses io_uring (Tests/Support/DenyIOURing).
    static var denyIOURingBinary: URL {
        productsDirectory.appendingPathComponent("deny-io-uring")
    }

    static func which(_ tool: String) -> String? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/\(tool)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Starts `executable` in the background with its output in a temporary log file.
    static func start(_ executable: String, _ arguments: [String], log: String,
                      environment: [String: String] = [:]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let logURL = FileManager.default.temporaryDirectory.appendingPathComponent(log)
        // A file that could not be made shows as FileHandle's error on the next line.
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        // The test runner's threads block most signals, and a child inherits its spawner's mask: it would ignore
        // our SIGTERM (and SIGHUP). Spawn with an empty mask, then restore this thread's.
        var empty = sigset_t()
        var previous = sigset_t()
        sigemptyset(&empty)
        pthread_sigmask(SIG_SETMASK, &empty, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        try process.run()
        return process
    }

    /// Whether `process` is still running (``ChildProcess/isRunning(_:)``: not trusting Foundation alone).
    static func isRunning(_ process: Process) -> Bool { ChildProcess.isRunning(process) }

    /// The exit status of a process that has exited; -1 while it runs or was signalled.
    static func exitStatus(_ process: Process) -> Int32 { ChildProcess.exitStatus(process) }

    /// Runs `executable` to completion, bounded by `timeout` seconds; returns its exit status.
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval, log: String,
                    environment: [String: String] = [:]) throws -> Int32 {
        let process = try start(executable, arguments, log: log, environment: environment)
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning(process) && Date() < deadline { usleep(50_000) }
        if isRunning(process) {
            stop(process)
            return -1
        }
        return exitStatus(process)
    }

    /// A SIPp UAS on 127.0.0.1:`port` answering every OPTIONS (Fixtures/options-uas.xml): a core that answers.
    static func startOptionsCore(port: Int, log: String) throws -> Process {
        let sipp = try #require(which("sipp"))
        return try start(sipp, ["-sf", fixtures.appendingPathComponent("options-uas.xml").path, "-i", "127.0.0.1",
                                "-p", "\(port)", "-nostdin"], log: log)
    }

    /// `count` OPTIONS at `rate` per second from a SIPp UAC on 127.0.0.1:`localPort` to 127.0.0.1:`destination`
    /// (Fixtures/options-uac.xml), each answered within `timeoutSeconds` or the run fails; its exit status (0:
    /// every one answered), the run itself bounded by twice that timeout.
    static func runOptions(to destination: Int, from localPort: Int, count: Int, rate: Int, timeoutSeconds: Int,
                           log: String) throws -> Int32 {
        let sipp = try #require(which("sipp"))
        return try run(sipp, ["-sf", fixtures.appendingPathComponent("options-uac.xml").path, "127.0.0.1:\(destination)",
                              "-i", "127.0.0.1", "-p", "\(localPort)", "-m", "\(count)", "-r", "\(rate)",
                              "-timeout", "\(timeoutSeconds)s", "-timeout_error", "-nostdin"],
                       timeout: TimeInterval(2 * timeoutSeconds), log: log)
    }

    /// Stops a process this test started, its children too (``ChildProcess/stop(_:)``).
    static func stop(_ process: Process) { ChildProcess.stop(process) }

    /// GETs `url` with curl (3 s at most) and returns what came back: the body, or with `headers` the status line
    /// and headers too; empty when nothing answered.
    static func httpGet(_ url: String, log: String, headers: Bool = false) throws -> String {
        let curl = try #require(which("curl"), "curl must be installed (scripts/install-deps.sh)")
        _ = try run(curl, ["-s", "--max-time", "3"] + (headers ? ["-i"] : []) + [url], timeout: 10, log: log)
        return logContents(log)
    }

    static func logContents(_ log: String) -> String {
        (try? String(contentsOf: FileManager.default.temporaryDirectory.appendingPathComponent(log), encoding: .utf8)) ?? ""
    }

    /// The "Successful call" and "Failed call" totals from the SIPp statistics file `NAME.csv` in the temporary
    /// directory (`-trace_stat -stf`; last line, cumulative).
    static func sippCallTotals(_ name: String) throws -> (successful: Int, failed: Int) {
        (try sippStatistic(name, "SuccessfulCall(C)"), try sippStatistic(name, "FailedCall(C)"))
    }

    /// One column of the last line of the SIPp statistics file `NAME.csv` (e.g. "Retransmissions(C)").
    static func sippStatistic(_ name: String, _ column: String) throws -> Int {
        let csv = try String(contentsOf: FileManager.default.temporaryDirectory.appendingPathComponent("\(name).csv"),
                             encoding: .utf8)
        let lines = csv.split(separator: "\n")
        let header = lines[0].split(separator: ";", omittingEmptySubsequences: false)
        let last = lines[lines.count - 1].split(separator: ";", omittingEmptySubsequences: false)
        let index = try #require(header.firstIndex { $0 == column }, "no column \(column) in \(name).csv")
        return try #require(Int(last[index]), "\(column) in \(name).csv: \(last[index])")
    }

    /// Each suite's own block of ports, so suites running in parallel never share one.
    enum PortBlock: Int {
        case calls = 0  // edge, uas, uac
        case seccomp = 4
        case admin = 6  // edge, core, uac, admin (6...10)
        case logging = 12
        case reload = 14
        case flood = 16
        case hostile = 18
        case notify = 20
        case streams = 22  // edge, core, tls, admin (22...25)
        case kamailio = 26  // edge, tls, kamailio, callee, caller, socat, core tls, admin (26...33)
        case portClaim = 34  // edge, tls, admin, spare (34...37)
        case dns = 38  // dnsmasq with fixed records, dnsmasq with changing records (38...39)
        case failover = 40  // edge, uas a, uas b, uac, admin, dnsmasq (40...45)
        case transactions = 46  // edge, tls, uas, uas 503, uac, admin, tls bridge, spare (46...53)
        case validation = 54  // edge, spare (54...55)
        case colon = 56  // edge (UDP and TCP), spare (56...57)
        case dashboard = 58  // edge, core, admin, spare (58...61)
        case capture = 62  // edge, core, admin, HEP collector, TCP collector, spare (62...67)
        case sharedState = 68  // redis, edges A B C, core, admins A B C, uac (68...76), spare 77
        case webSocket = 78  // edge, ws, wss, kamailio, caller, admin, core, spare (78...85)
        case faults = 86  // edge and client for each of two faults (86...89)
        case handover = 90  // edge (UDP and TCP), core, caller A, caller B, admin, spare (90...97)
        case soak = 98  // perf/soak.sh: edge, tls, core, caller, admin, spare (98...105)
        case faultsUnderLoad = 106  // edge (UDP and TCP), tls, admin, core A, core B, caller, spare (106...113)
    }

    /// A port block per test process (by PID), below the kernel's ephemeral range (32768 and up): 110 slots of 114.
    static func portBase(_ block: PortBlock) -> Int {
        20_000 + Int(getpid() % 110) * 114 + block.rawValue
    }

    /// The value of one series in a Prometheus text exposition (`name{labels}` exactly as written), nil if absent.
    static func metricValue(_ series: String, in metrics: String) -> Double? {
        for line in metrics.split(separator: "\n") where line.hasPrefix(series + " ") {
            return Double(line.dropFirst(series.count + 1).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// Kamailio as the registrar and proxy of Fixtures/kamailio-registrar.cfg on UDP and TCP `port`, and with `tls`
    /// also on TLS (tls module, the test CA's certificate for localhost) at its port.
    static func startKamailioRegistrar(port: Int, tls: (port: Int, certificates: TestCertificates)? = nil,
                                       log: String) throws -> Process {
        let kamailio = try #require(which("kamailio") ?? (FileManager.default.isExecutableFile(
            atPath: "/usr/sbin/kamailio") ? "/usr/sbin/kamailio" : nil), "kamailio must be installed")
        let runtime = FileManager.default.temporaryDirectory.appendingPathComponent("kamailio-\(getpid())-\(port)").path
        try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true)
        var tlsArguments: [String] = []
        if let tls {
            let profile = "\(runtime)/tls.cfg"
            try """
                [server:default]
                method = TLSv1.2+
                certificate = \(tls.certificates.serverCertificate)
                private_key = \(tls.certificates.serverKey)
                verify_certificate = no
                require_certificate = no
                """.write(toFile: profile, atomically: true, encoding: .utf8)
            tlsArguments = ["-A", "WITH_TLS", "-A", "TLS_CONFIG=\"\(profile)\"", "-l", "tls:127.0.0.1:\(tls.port)"]
        }
        return try start(kamailio, tlsArguments + [
            "-f", fixtures.appendingPathComponent("kamailio-registrar.cfg").path, "-DD", "-E", "-m", "64", "-M", "8",
            "-n", "1", "-Y", runtime, "-P", "\(runtime)/kamailio.pid",
            "-l", "udp:127.0.0.1:\(port)", "-l", "tcp:127.0.0.1:\(port)",
        ], log: log)
    }

    /// SIPp has no TLS here: a client's TCP connection to `listenPort` goes through socat, which speaks TLS
    /// (OpenSSL, verifying the edge's certificate against the test CA) to the edge's `tlsPort`.
    static func startTLSBridge(listenPort: Int, tlsPort: Int, certificates: TestCertificates,
                               log: String) throws -> Process {
        let socat = try #require(which("socat"), "socat must be installed (scripts/install-deps.sh)")
        return try start(socat, [
            "TCP-LISTEN:\(listenPort),bind=127.0.0.1,reuseaddr",
            "OPENSSL:127.0.0.1:\(tlsPort),cafile=\(certificates.caCertificate),commonname=localhost",
        ], log: log)
    }
}

/// A SIP message's text, picked apart just enough for tests to count what a peer received: by method, Call-ID
/// and top Via branch.
struct SIPText {
    let text: String

    var lines: [Substring] { text.split(separator: "\r\n", omittingEmptySubsequences: false) }

    /// The request method, nil for a response.
    var method: String? {
        guard let first = lines.first, !first.hasPrefix("SIP/2.0 ") else { return nil }
        return first.split(separator: " ").first.map(String.init)
    }

    /// The status code, nil for a request.
    var status: Int? {
        guard let first = lines.first, first.hasPrefix("SIP/2.0 ") else { return nil }
        return Int(first.dropFirst(8).prefix(3))
    }

    /// The first header line named `name` (or its compact form), its value trimmed.
    func header(_ name: String, compact: String? = nil) -> String? {
        for line in lines.dropFirst() {
            if line.isEmpty { break }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let field = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            if field == name.lowercased() || field == compact?.lowercased() {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    var callID: String? { header("Call-ID", compact: "i") }

    /// The branch parameter of the first Via.
    var topBranch: String? {
        guard let via = header("Via", compact: "v") else { return nil }
        let first = via.split(separator: ",").first ?? Substring(via)
        for parameter in first.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            if pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "branch" {
                return pair[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// The messages a SIPp peer received, from its `-trace_msg` file (each one follows a "… message received
    /// [N] bytes :" line and a blank line). Lines there end in LF; they are given CRLF back.
    static func receivedBySIPp(trace: URL) -> [SIPText] {
        let text = (try? String(contentsOf: trace, encoding: .utf8)) ?? ""
        return text.components(separatedBy: "\n----------------------------------------------- ").compactMap { block in
            let parts = block.components(separatedBy: "\n")
            guard parts.count > 3, parts[1].contains(" message received ") else { return nil }
            return SIPText(text: parts[3...].joined(separator: "\r\n"))
        }
    }
}
