// libFuzzer harness for what reaches sip-edge from outside besides SIP datagrams (SIPParserFuzzer covers those).
// The first input byte picks the reader, the rest is its input:
//   0. a flow token (Route/Via `ft=`), through FlowTokenCodec.decode: a token that verifies re-encodes to exactly
//      its own bytes (one spelling per flow); the seeds hold valid tokens under the harness's key.
//   1. an admin HTTP request head (AdminHTTP.scanHead, requestLine): a complete head ends with its empty line
//      within the limit; a request line's method is a token and its path has no query or fragment.
//   2. a configuration file (EdgeConfiguration.parse): one that loads writes out (yaml()) to text that loads back
//      to the same configuration; one that does not load is refused with a ConfigError, never a crash.
//   3. a TCP byte stream (StreamFramer, as StreamTransport frames a connection's buffer): every step consumes
//      something or waits, and a message never reaches past the bytes received.
// A disagreement is a fatalError, which libFuzzer reports as a crash with the input saved as an artifact.

import SIPAdmin
import SIPBytes
import SIPConfig
import SIPParsing
import SIPProxyCore

func disagree(_ what: String, _ detail: String) -> Never {
    fatalError("EdgeInputsFuzzer: \(what):\n  \(detail)")
}

// Created once: a fuzz harness is single-threaded.
nonisolated(unsafe) let tokenCodec = FlowTokenCodec(key: Array("edge-inputs-fuzzer-flow-key-0123".utf8))
nonisolated(unsafe) let streamScanner: MessageScanner = try! MessageScanner()

func fuzzFlowToken(_ input: [UInt8]) {
    guard let flow = input.withPacketBytes({ tokenCodec.decode($0, $0.all) }) else { return }
    var again: [UInt8] = []
    tokenCodec.append(flow, to: &again)
    if again != input { disagree("flow token spellings", "\(input) decodes to \(flow), which encodes as \(again)") }
}

func fuzzAdminRequest(_ input: [UInt8]) {
    let limit = 512
    switch AdminHTTP.scanHead(input, maxBytes: limit) {
    case .incomplete:
        if input.count >= limit { disagree("admin head", "incomplete past the limit") }
    case .tooLarge:
        if input.count < limit { disagree("admin head", "too large below the limit") }
    case .complete(let length):
        guard length <= min(input.count, limit), input[length - 1] == 0x0A else {
            disagree("admin head", "complete at \(length) of \(input.count)")
        }
        guard let line = AdminHTTP.requestLine(Array(input[0..<length])) else { return }
        let tokenCharacters = Set("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        if line.method.isEmpty || !line.method.allSatisfy(tokenCharacters.contains) || line.path.contains("?")
            || line.path.contains("#") {
            disagree("admin request line", "\(line)")
        }
    }
}

func fuzzConfiguration(_ input: [UInt8]) {
    guard let text = String(validating: input, as: UTF8.self) else { return }
    let configuration: EdgeConfiguration
    do {
        configuration = try EdgeConfiguration.parse(yaml: text)
    } catch is ConfigError {
        return
    } catch {
        disagree("configuration refusal", "not a ConfigError: \(error)")
    }
    let written = configuration.yaml()
    do {
        let reread = try EdgeConfiguration.parse(yaml: written)
        if reread != configuration { disagree("configuration round trip", "read back differently:\n\(written)") }
    } catch {
        disagree("configuration round trip", "\(error) reading back:\n\(written)")
    }
}

func fuzzStream(_ input: [UInt8]) {
    let limits = ScanLimits(maxMessageSize: 4_096, maxLineLength: 1_024, maxHeaders: 64)
    var offset = 0
    while offset < input.count {
        let frame = input.withPacketBytes(from: offset) { StreamFramer.nextFrame(in: $0, scanner: streamScanner, limits: limits) }
        let consumed: Int
        switch frame {
        case .message(let span): consumed = span.end
        case .ping(let count), .padding(let count): consumed = count
        case .needMore, .invalid: return
        }
        guard consumed > 0, offset + consumed <= input.count else {
            disagree("stream framing", "consumed \(consumed) at \(offset) of \(input.count): \(frame)")
        }
        offset += consumed
    }
}

public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 4 {
    case 0: fuzzFlowToken(input)
    case 1: fuzzAdminRequest(input)
    case 2: fuzzConfiguration(input)
    default: fuzzStream(input)
    }
    return 0
}
