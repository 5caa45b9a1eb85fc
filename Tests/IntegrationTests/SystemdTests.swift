import Foundation
import SIPTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The systemd unit is valid and hardened, and sip-edge speaks the notify protocol it declares.
@Suite struct SystemdTests {
    /// A copy of the unit whose ExecStart paths point at the built binary (verify insists the binary exists).
    func unitCopy() throws -> URL {
        let unit = try String(contentsOf: ProcessHarness.repositoryRoot.appendingPathComponent("systemd/sip-edge.service"),
                              encoding: .utf8)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("unit-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let copy = directory.appendingPathComponent("sip-edge.service")
        try unit.replacingOccurrences(of: "/usr/local/bin/sip-edge", with: ProcessHarness.sipEdgeBinary.path)
            .write(to: copy, atomically: true, encoding: .utf8)
        return copy
    }

    @Test func unitVerifiesCleanly() throws {
        let analyze = try #require(ProcessHarness.which("systemd-analyze"))
        let status = try ProcessHarness.run(analyze, ["verify", "--man=no", try unitCopy().path], timeout: 30,
                                            log: "unit-verify.log")
        let log = ProcessHarness.logContents("unit-verify.log")
        #expect(status == 0, "\(log)")
        // Unknown keys and bad values are only warnings (rc 0): any output at all is a defect.
        #expect(log.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(log)")
    }

    /// When sip-edge dies (a worker's fatal condition ends the process: exit status 1, or a signal after a trap;
    /// ProcessTests shows both), systemd starts it again, gives up after 5 starts in 60 s rather than flapping, and
    /// keeps the core for `coredumpctl`.
    @Test func theUnitRestartsAFailedProcessAndKeepsItsCore() throws {
        let unit = try String(contentsOf: unitCopy(), encoding: .utf8)
        var section = ""
        var keys: [String: [String]] = [:]
        for line in unit.split(separator: "\n") where !line.hasPrefix("#") {
            if line.hasPrefix("[") { section = String(line); continue }
            guard let equals = line.firstIndex(of: "=") else { continue }
            keys["\(section)\(line[..<equals])", default: []].append(String(line[line.index(after: equals)...]))
        }
        #expect(keys["[Service]Restart"] == ["on-failure"], "exit status 1 and death by a signal are both failures")
        #expect(keys["[Unit]StartLimitIntervalSec"] == ["60"] && keys["[Unit]StartLimitBurst"] == ["5"])
        #expect(keys["[Service]LimitCORE"] == ["infinity"])
    }

    @Test func unitExposureIsAtMostTwo() throws {
        let analyze = try #require(ProcessHarness.which("systemd-analyze"))
        let status = try ProcessHarness.run(analyze, ["security", "--offline=true", "--threshold=20",
                                                      try unitCopy().path],
                                            timeout: 30, log: "unit-security.log")
        let log = ProcessHarness.logContents("unit-security.log")
        #expect(status == 0, "exposure above 2.0:\n\(log.suffix(400))")
        let line = try #require(log.split(separator: "\n").last { $0.contains("Overall exposure level") })
        let score = try #require(Double(line.split(separator: ":").last!.split(separator: " ").first!))
        #expect(score <= 2.0, "\(line)")
    }

    /// A notification socket like systemd's (NOTIFY_SOCKET) at a fresh path, with a 3 s receive timeout.
    func notificationSocket(_ name: String) -> (fd: Int32, path: String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid()).sock").path
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return (fd, path)
    }

    func receive(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = recv(fd, &buffer, buffer.count, 0)
        return count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self) : nil
    }

    /// READY=1 once the workers are bound, WATCHDOG=1 while running, STOPPING=1 on SIGTERM.
    @Test func notifiesSystemdOfReadinessWatchdogAndStop() throws {
        let (fd, path) = notificationSocket("notify")
        defer {
            close(fd)
            unlink(path)
        }
        func receive() -> String? { self.receive(fd) }

        let edge = try ProcessHarness.start(
            ProcessHarness.sipEdgeBinary.path,
            ["--listen", "udp:127.0.0.1:\(ProcessHarness.portBase(.notify))", "--workers", "1", "--admin", "off"],
            log: "notify-edge.log", environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"])
        defer { ProcessHarness.stop(edge) }
        let ready = receive()
        #expect(ready?.hasPrefix("READY=1\nSTATUS=1 UDP workers on 127.0.0.1:") == true, "\(String(describing: ready))")
        #expect(receive() == "WATCHDOG=1")
        kill(edge.processIdentifier, SIGHUP)  // no reload yet, but it must not stop the proxy
        usleep(200_000)
        #expect(ProcessHarness.isRunning(edge))
        let stopRequested = Date()
        kill(edge.processIdentifier, SIGTERM)
        var stopping = false
        for _ in 0..<20 {
            guard let message = receive() else { break }
            if message == "STOPPING=1" {
                stopping = true
                break
            }
        }
        #expect(stopping)
        #expect(ChildProcess.waitForExit(edge, seconds: 10), "sip-edge did not exit after STOPPING=1")
        #expect(ProcessHarness.exitStatus(edge) == 0)
        // Drained and gone well within systemd's TimeoutStopSec.
        #expect(Date().timeIntervalSince(stopRequested) < 2)
    }

    /// A zero-downtime restart as systemd sees it (NotifyAccess=all): the new process names itself the main
    /// process and is ready, feeds the watchdog, and the old one exits without ever saying STOPPING=1 (which
    /// would make systemd stop the service).
    @Test func aHandoverTellsSystemdTheNewMainProcessAndNeverStopping() throws {
        let (fd, path) = notificationSocket("notify-handover")
        defer {
            close(fd)
            unlink(path)
        }
        let edge = try ProcessHarness.start(
            ProcessHarness.sipEdgeBinary.path,
            ["--listen", "udp:127.0.0.1:\(ProcessHarness.portBase(.notify) + 1)", "--workers", "1", "--admin", "off"],
            log: "notify-handover-edge.log", environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"])
        defer { ProcessHarness.stop(edge) }
        #expect(receive(fd)?.hasPrefix("READY=1") == true)
        kill(edge.processIdentifier, SIGUSR2)
        var messages: [String] = []
        let deadline = Date().addingTimeInterval(10)
        var afterExit = 0
        // Until the old process has gone and five more messages (watchdog pings, 100 ms apart) came after it.
        while Date() < deadline, afterExit < 5, let message = receive(fd) {
            messages.append(message)
            if !ProcessHarness.isRunning(edge) { afterExit += 1 }
        }
        let mainPID = messages.first { $0.hasPrefix("MAINPID=") }.flatMap { Int32($0.dropFirst(8)) }
        let successor = try #require(mainPID, "no MAINPID among \(messages)")
        defer {
            kill(successor, SIGTERM)
            usleep(300_000)
        }
        #expect(successor != edge.processIdentifier)
        let log = ProcessHarness.logContents("notify-handover-edge.log")
        #expect(log.contains("as PID \(successor)"), "\(log)")
        let afterMainPID = messages.drop { !$0.hasPrefix("MAINPID=") }
        #expect(afterMainPID.contains { $0.hasPrefix("READY=1") }, "\(messages)")
        #expect(!ProcessHarness.isRunning(edge), "the old process should have drained and exited")
        #expect(!messages.contains("STOPPING=1"), "\(messages)")
        // The watchdog goes on, fed by the new main process.
        #expect(receive(fd) == "WATCHDOG=1")
    }
}

@Suite struct InstallTests {
    @Test func installStagesEveryFileAndKeepsAnExistingConfiguration() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("install-\(getpid())")
        try? FileManager.default.removeItem(at: root)
        let script = ProcessHarness.repositoryRoot.appendingPathComponent("scripts/install.sh").path
        let environment = ["DESTDIR": root.path, "PREFIX": "/opt/sip-edge"]
        #expect(try ProcessHarness.run(script, [ProcessHarness.sipEdgeBinary.path], timeout: 30, log: "install.log",
                                       environment: environment) == 0, "\(ProcessHarness.logContents("install.log"))")
        for path in ["opt/sip-edge/bin/sip-edge", "etc/systemd/system/sip-edge.service", "usr/lib/sysusers.d/sip-edge.conf",
                     "etc/default/sip-edge", "etc/sip-edge/sip-edge.yaml", "opt/sip-edge/share/doc/sip-edge/README.md"] {
            #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path), "\(path)")
        }
        let unit = try String(contentsOf: root.appendingPathComponent("etc/systemd/system/sip-edge.service"), encoding: .utf8)
        #expect(unit.contains("ExecStart=/opt/sip-edge/bin/sip-edge run --config /etc/sip-edge/sip-edge.yaml"))
        // The installed configuration is the embedded defaults, and it checks.
        let config = root.appendingPathComponent("etc/sip-edge/sip-edge.yaml")
        #expect(try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path, ["config", "--check", config.path], timeout: 10,
                                       log: "install-check.log") == 0)
        // A second install leaves an edited configuration alone.
        try "workers: 3\n".write(to: config, atomically: true, encoding: .utf8)
        #expect(try ProcessHarness.run(script, [ProcessHarness.sipEdgeBinary.path], timeout: 30, log: "install2.log",
                                       environment: environment) == 0)
        #expect(try String(contentsOf: config, encoding: .utf8) == "workers: 3\n")
        try? FileManager.default.removeItem(at: root)
    }
}
