import ArgumentParser
import Foundation
import SIPBytes
import SIPParsing

/// `sip-edge check [FILE]`: parses and fully validates one message and prints a JSON verdict. Exit status 0 when
/// the message is valid, 1 when it is not, so scripts can use it as a filter.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Parse and validate one SIP message; print a JSON verdict.",
        discussion: "Reads FILE, or standard input when FILE is omitted or '-'. Exits 0 if valid, 1 if not."
    )

    @Argument(help: "The message file ('-' or nothing for standard input).")
    var file: String?

    @Flag(help: "Treat the input as one message from a stream (Content-Length required).")
    var stream = false

    func run() throws {
        let bytes: [UInt8]
        if let file, file != "-" {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read \(file)")
            }
            bytes = Array(data)
        } else {
            bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        let verdict = try Self.verdict(for: bytes, framing: stream ? .stream : .datagram)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        print(String(decoding: try encoder.encode(verdict), as: UTF8.self))
        if !verdict.valid { throw ExitCode(1) }
    }

    struct Verdict: Encodable {
        var valid: Bool
        var error: String?
        var reason: String?
        var offset: UInt32?
        var kind: String?
        var method: String?
        var statusCode: UInt16?
        var callID: String?
        var topViaBranch: String?
        var headers: Int?
        var bodyLength: Int?
    }

    static func verdict(for bytes: [UInt8], framing: Framing) throws -> Verdict {
        let parser = try SIPParser()
        return bytes.withPacketBytes { packet -> Verdict in
            do throws(SIPParseError) {
                let message = try parser.parse(packet, framing: framing)
                try parser.validateAllHeaders(message)
                return Verdict(
                    valid: true,
                    kind: message.isRequest ? "request" : "response",
                    method: message.isRequest ? message.string(message.method.span) : nil,
                    statusCode: message.statusLine?.statusCode,
                    callID: message.string(message.callID),
                    topViaBranch: message.topVia.branch.map(message.string),
                    headers: message.headerCount,
                    bodyLength: message.body.count
                )
            } catch {
                return Verdict(valid: false, error: error.code.rawValue, reason: error.code.explanation,
                               offset: error.offset)
            }
        }
    }
}
