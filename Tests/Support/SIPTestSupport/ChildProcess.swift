public import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What tests need to know about a child `Process`, without trusting Foundation to learn of its exit: Foundation
/// hears of it through SIGCHLD, which can reach a runner thread that discards it, leaving `isRunning` true for tens
/// of seconds, and once for good (an `openssl` that had exited hung `waitUntilExit` under TSan). /proc shows the
/// zombie at once. Every wait here is bounded: a test fails, it never hangs the run.
public enum ChildProcess {
    /// Whether `process` is still running.
    public static func isRunning(_ process: Process) -> Bool {
        guard process.isRunning else { return false }
        if case .running = state(of: process.processIdentifier) { return true }
        return false
    }

    /// The exit status of a process that has exited; -1 while it runs or when it was killed by a signal.
    public static func exitStatus(_ process: Process) -> Int32 {
        if !process.isRunning { return foundationStatus(process) }
        switch state(of: process.processIdentifier) {
        case .running:
            return -1
        case .exited(let status):
            return status & 0x7F == 0 ? (status >> 8) & 0xFF : -1
        case .reaped:
            // Foundation reaped it between the two reads above and records its status next: wait for that (bounded),
            // rather than report an exit as "still running" (seen under TSan, where the window is wider).
            let deadline = Date().addingTimeInterval(2)
            while process.isRunning && Date() < deadline { usleep(5_000) }
            return process.isRunning ? -1 : foundationStatus(process)
        }
    }

    private static func foundationStatus(_ process: Process) -> Int32 {
        process.terminationReason == .exit ? process.terminationStatus : -1
    }

    /// Waits at most `seconds` for `process` to exit; true when it did.
    @discardableResult
    public static func waitForExit(_ process: Process, seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning(process) && Date() < deadline { usleep(20_000) }
        return !isRunning(process)
    }

    /// Stops a process the test started, by its PID: SIGTERM, then SIGKILL after 3 s. Its children (Kamailio forks
    /// workers) are the test's too: whatever of them outlives it is killed by PID, or they would hold its output
    /// open.
    public static func stop(_ process: Process) {
        guard isRunning(process) else { return }
        let children = descendants(of: process.processIdentifier)
        kill(process.processIdentifier, SIGTERM)
        if !waitForExit(process, seconds: 3) { kill(process.processIdentifier, SIGKILL) }
        for child in children { kill(child, SIGKILL) }
        waitForExit(process, seconds: 5)
    }

    /// Every process below `pid`, from /proc.
    public static func descendants(of pid: Int32) -> [Int32] {
        let path = "/proc/\(pid)/task/\(pid)/children"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        let children = text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        return children + children.flatMap { descendants(of: $0) }
    }

    private enum State {
        case running
        /// Exited, not yet reaped: its wait status.
        case exited(Int32)
        /// Gone from /proc: reaped already.
        case reaped
    }

    /// What /proc says of a child: running, a zombie with its wait status (field 52 of /proc/PID/stat), or gone.
    private static func state(of pid: Int32) -> State {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let end = stat.lastIndex(of: ")") else { return .reaped }
        let fields = stat[stat.index(after: end)...].split(whereSeparator: \.isWhitespace)
        // fields[0] is the state (field 3); the exit code is field 52.
        guard fields.first == "Z", fields.count >= 50, let status = Int32(fields[49]) else { return .running }
        return .exited(status)
    }
}
