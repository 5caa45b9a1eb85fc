import Foundation
import Logging
import SIPBytes
import SIPConfig
import SIPTransport
import SIPUring
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The zero-downtime restart protocol between a running sip-edge (the predecessor) and the one it starts on SIGUSR2
/// (the successor), over a ``HandoverChannel``. Text messages, each with its sockets:
///
///     predecessor -> successor   "sip-edge-handover 1" workers, flow key, branch secret     (no sockets)
///                                "worker I ROLE ROLE..."                                      (those sockets, in order)
///                                "admin"                                                      (the admin listener)
///                                "end"
///     successor -> predecessor   "ready PID"  |  "refused REASON"
///     predecessor -> successor   "upstreams I"  (worker I's upstream sockets, once drained), ..., "done"
///
/// The successor adopts the listening sockets (the same kernel sockets: queued datagrams and connections are not
/// lost, the SO_REUSEPORT groups and their steering stay), serves, and says ready; the predecessor then stops
/// reading them, serves its open connections until they close or `handover.drain_s` passes, and sends its
/// upstream-facing sockets last, so the Path and Record-Route entries naming their ports keep reaching a process.
enum HandoverProtocol {
    static let version = "sip-edge-handover 1"
}

/// What a successor received from its predecessor before starting its workers.
struct InheritedState {
    let predecessor: HandoverChannel
    let predecessorPID: Int32
    let workers: Int
    let flowKey: [UInt8]
    let branchSecret: UInt64
    /// Listening sockets by worker and role.
    let sockets: [Int: [SocketRole: Int32]]
    let admin: Int32?

    /// Reads the predecessor's sockets from the channel `SIPEDGE_HANDOVER_FD` names (and unsets the variable, so a
    /// successor of ours does not inherit it).
    static func receive(descriptorText: String) throws -> InheritedState {
        unsetenv(HandoverChannel.inheritedVariable)
        guard let descriptor = Int32(descriptorText), descriptor >= 0 else {
            throw HandoverError("\(HandoverChannel.inheritedVariable)=\(descriptorText) is not a descriptor")
        }
        let channel = try HandoverChannel(inheritedDescriptor: descriptor)
        guard let first = try channel.receive(timeoutMilliseconds: 10_000) else {
            throw HandoverError("the predecessor closed the handover channel before sending its sockets")
        }
        let header = Self.fields(first.text)
        guard first.text.hasPrefix(HandoverProtocol.version), let workers = header["workers"].flatMap(Int.init),
              let key = header["flow_key"].flatMap(Self.bytes(hex:)), let secret = header["branch_secret"].flatMap({ UInt64($0, radix: 16) }),
              let pid = header["pid"].flatMap(Int32.init) else {
            throw HandoverError("unexpected first handover message: \(first.text.prefix(80))")
        }
        var sockets: [Int: [SocketRole: Int32]] = [:]
        var admin: Int32?
        while true {
            guard let message = try channel.receive(timeoutMilliseconds: 10_000) else {
                throw HandoverError("the predecessor closed the handover channel mid-way")
            }
            let words = message.text.split(separator: " ").map(String.init)
            switch words.first {
            case "worker":
                let roles = words.dropFirst(2).compactMap(SocketRole.init(rawValue:))
                guard words.count >= 2, let worker = Int(words[1]), roles.count == message.descriptors.count else {
                    message.descriptors.forEach(Descriptor.close)
                    throw HandoverError("malformed handover message: \(message.text)")
                }
                for (role, descriptor) in zip(roles, message.descriptors) { sockets[worker, default: [:]][role] = descriptor }
            case "admin":
                admin = message.descriptors.first
            case "end":
                return InheritedState(predecessor: channel, predecessorPID: pid, workers: workers, flowKey: key,
                                      branchSecret: secret, sockets: sockets, admin: admin)
            default:
                message.descriptors.forEach(Descriptor.close)
                throw HandoverError("unexpected handover message: \(message.text.prefix(80))")
            }
        }
    }

    /// The listeners whose sockets came from the predecessor (worker 0 has every role the others have).
    func inherits(_ role: SocketRole) -> Bool { sockets[0]?[role] != nil }

    /// Tells the predecessor we serve; from now on its upstream sockets may follow (read by ``receiveUpstreams``).
    func reportReady() throws {
        try predecessor.send("ready \(getpid())")
    }

    func refuse(_ reason: String) {
        try? predecessor.send("refused \(reason)")
    }

    /// Reads the predecessor's upstream sockets as its workers drain, handing each batch to our workers, until it
    /// says done or exits. Runs on its own thread.
    func receiveUpstreams(into handover: WorkerHandover, log: (String) -> Void) {
        var adopted = 0
        while let message = try? predecessor.receive(timeoutMilliseconds: -1) {
            let words = message.text.split(separator: " ")
            if words.first == "upstreams", words.count == 2, let worker = Int(words[1]) {
                handover.postLegacyUpstreams([worker: message.descriptors])
                adopted += message.descriptors.count
            } else {
                message.descriptors.forEach(Descriptor.close)
                if message.text == "done" { break }
            }
        }
        log("handover: the predecessor (PID \(predecessorPID)) has drained; \(adopted) upstream sockets adopted")
    }

    static func fields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = String(parts[1]) }
        }
        return fields
    }

    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

struct HandoverError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The running process's side: on SIGUSR2 start a successor, hand it the sockets, and drain once it serves.
final class SuccessorLaunch: Sendable {
    /// The binary to start: the path this process was started as (so a new binary installed there is the one
    /// started), made absolute now, before anything could change the working directory.
    let executable: String
    let arguments: [String]
    private let inProgress = Atomic<Bool>(false)
    private let handedOverTo = Atomic<Int32>(0)

    init() {
        let argv0 = CommandLine.arguments.first ?? ""
        if argv0.contains("/") {
            executable = argv0.hasPrefix("/") ? argv0 : FileManager.default.currentDirectoryPath + "/" + argv0
        } else {
            executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? argv0
        }
        arguments = Array(CommandLine.arguments.dropFirst())
    }

    /// The successor's pid once it serves (0 before).
    var successor: Int32 { handedOverTo.load(ordering: .acquiring) }

    /// Starts the handover on its own thread (the main thread goes back to waiting for signals). A second SIGUSR2
    /// while one runs, or after one succeeded, is ignored.
    func start(flowKey: [UInt8], branchSecret: UInt64, workers: Int, handover: WorkerHandover, admin: AdminHandle?,
               settings: HandoverSettings, started: WorkerStartup, log: @escaping @Sendable (String, Logger.Level) -> Void) {
        guard successor == 0, inProgress.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged else {
            log("SIGUSR2: a handover is already under way or done; ignored", .warning)
            return
        }
        let thread = Thread { [self] in
            ThreadName.setCurrent("sip-edge-handover")
            do {
                try run(flowKey: flowKey, branchSecret: branchSecret, workers: workers, handover: handover, admin: admin,
                        settings: settings, started: started, log: log)
            } catch {
                log("handover failed, serving on: \(error)", .error)
            }
            inProgress.store(false, ordering: .releasing)
        }
        thread.name = "sip-edge-handover"
        thread.start()
    }

    private func run(flowKey: [UInt8], branchSecret: UInt64, workers: Int, handover: WorkerHandover,
                     admin: AdminHandle?, settings: HandoverSettings, started: WorkerStartup,
                     log: @Sendable (String, Logger.Level) -> Void) throws {
        var environment = ProcessInfo.processInfo.environment
        // The successor feeds systemd's watchdog as the new main process: WATCHDOG_PID would name us.
        environment["WATCHDOG_PID"] = nil
        let (channel, pid) = try HandoverChannel.spawnSuccessor(executable: executable, arguments: arguments,
                                                                environment: environment)
        log("SIGUSR2: started \(executable) as PID \(pid); handing over the listening sockets", .notice)
        do {
            try channel.send("""
                \(HandoverProtocol.version)
                workers \(workers)
                flow_key \(flowKey.map { String(format: "%02x", $0) }.joined())
                branch_secret \(String(branchSecret, radix: 16))
                pid \(getpid())
                """)
            for (worker, sockets) in handover.listeningSockets.sorted(by: { $0.key < $1.key }) {
                let ordered = sockets.sorted { $0.key.rawValue < $1.key.rawValue }
                try channel.send("worker \(worker) " + ordered.map(\.key.rawValue).joined(separator: " "),
                                 descriptors: ordered.map(\.value))
            }
            if let admin { try channel.send("admin", descriptors: [admin.descriptor]) }
            try channel.send("end")
            let reply = try channel.receive(timeoutMilliseconds: Int32(settings.readyTimeoutSeconds * 1_000))
            guard let reply, reply.text.hasPrefix("ready ") else {
                throw HandoverError(reply.map { "the new process refused: \($0.text.dropFirst("refused ".count))" }
                                    ?? "the new process exited before serving")
            }
        } catch {
            // Not serving: it must not hold our ports half-started. It exits by itself after a refusal; one that
            // does not within 2 s (hung, or never answered) we started, so we end it.
            var status = ChildProcess.exitStatus(pid)
            for _ in 0..<100 where status == nil {
                usleep(20_000)
                status = ChildProcess.exitStatus(pid)
            }
            if status == nil {
                kill(pid, SIGKILL)
                usleep(50_000)
                status = ChildProcess.exitStatus(pid)
            }
            throw HandoverError("\(error)" + (status.map { " (it exited with status \($0))" } ?? ""))
        }
        handedOverTo.store(pid, ordering: .releasing)
        log("handover: PID \(pid) serves now; draining open connections for at most \(settings.drainSeconds) s", .notice)
        admin?.stop()
        handover.startDrain(deadline: MonotonicClock.milliseconds() + UInt64(settings.drainSeconds) * 1_000)
        started.waitForFinish()
        var sent = 0
        for (worker, descriptors) in handover.takeReturnedUpstreams().sorted(by: { $0.key < $1.key }) {
            defer { descriptors.forEach(Descriptor.close) }
            if (try? channel.send("upstreams \(worker)", descriptors: descriptors)) != nil { sent += descriptors.count }
        }
        try? channel.send("done")
        log("handover: drained; \(sent) upstream sockets passed to PID \(pid); exiting", .notice)
        ProcessSignals.requestStop()
    }
}

/// The admin listener as the handover sees it: its socket to pass on, and a way to stop serving it.
struct AdminHandle: Sendable {
    let descriptor: Int32
    let stop: @Sendable () -> Void
}
