import Foundation
public import SIPBytes
public import SIPSettings
public import SIPSecurity

/// The security audit log: one JSON line per refused message (rule, action, source, method, Call-ID), capped
/// per second so a flood cannot turn into a disk-filling log flood. One per worker; lines are written whole with
/// O_APPEND, so workers sharing a file do not interleave within a line.
public final class AuditLog {
    private let handle: FileHandle?
    private let linesPerSecond: Int
    private let worker: Int
    private var second: UInt64 = 0
    private var linesThisSecond = 0
    /// Lines not written because of the cap (counted, and reported in the next line written).
    public private(set) var suppressed = 0
    private var suppressedUnreported = 0
    /// Lines whose write failed (ENOSPC, EIO).
    public private(set) var writeFailures = 0

    public init(destination: AuditDestination, linesPerSecond: Int, worker: Int) throws {
        self.linesPerSecond = linesPerSecond
        self.worker = worker
        switch destination {
        case .off:
            handle = nil
        case .standardError:
            handle = FileHandle.standardError
        case .file(let path):
            let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
            guard descriptor >= 0 else {
                throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
            }
            handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        }
    }

    /// Records one refusal. `now` is the monotonic clock in milliseconds (for the cap); the line carries wall time.
    /// `ban`: for a banned source, the step of the escalation its ban is at and that step's length, so the log
    /// tells a first offence (`"ban_step":1`) from a source that keeps coming back.
    public func record(rule: SecurityRule, action: String, status: UInt16?, source: EndpointAddress,
                       method: String?, callID: String?, now: UInt64,
                       ban: (step: Int, milliseconds: UInt64)? = nil) {
        guard let handle else { return }
        if now / 1_000 != second {
            second = now / 1_000
            linesThisSecond = 0
        }
        guard linesThisSecond < linesPerSecond else {
            suppressed += 1
            suppressedUnreported += 1
            return
        }
        linesThisSecond += 1
        var line = "{\"ts\":\(Int(Date().timeIntervalSince1970 * 1_000)),\"worker\":\(worker),\"rule\":\"\(rule.rawValue)\""
        line += ",\"action\":\"\(action)\""
        if let status { line += ",\"status\":\(status)" }
        line += ",\"source\":\"\(source)\""
        if let method { line += ",\"method\":\(Self.jsonString(method))" }
        if let callID { line += ",\"call_id\":\(Self.jsonString(callID))" }
        if let ban { line += ",\"ban_step\":\(ban.step),\"ban_ms\":\(ban.milliseconds)" }
        if suppressedUnreported > 0 {
            line += ",\"suppressed_before\":\(suppressedUnreported)"
            suppressedUnreported = 0
        }
        line += "}\n"
        do {
            try handle.write(contentsOf: Data(line.utf8))
        } catch {
            // A full disk (ENOSPC) or a gone file: the line is lost, counted, and the message path goes on.
            writeFailures += 1
        }
    }

    /// Lines lost: suppressed over the per-second cap, or whose write failed.
    public var linesLost: Int { suppressed + writeFailures }

    /// A JSON string literal of attacker-controlled text: printable ASCII kept, everything else \u-escaped, and
    /// at most 128 characters.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars.prefix(128) {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case " "..."~": out.unicodeScalars.append(scalar)
            default:
                let value = scalar.value
                if value > 0xFFFF {
                    out += "\\ufffd"
                } else {
                    out += "\\u" + String(repeating: "0", count: 4 - String(value, radix: 16).count) + String(value, radix: 16)
                }
            }
        }
        return out + "\""
    }
}
