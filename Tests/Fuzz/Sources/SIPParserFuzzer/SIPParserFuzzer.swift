// libFuzzer entry point for the C span scanner (CSIPScan) and the Swift parser (SIPParsing).
//
// Every input is:
//   1. parsed as a datagram by the default (auto SIMD) parser, fully validated, and every span the message exposes
//      is read back (bounds are checked by PacketBytes, so a span outside the buffer traps);
//   2. parsed again by one parser per SIMD level this CPU supports (scalar, SSE4.2, AVX2), with the default limits
//      and with tight limits that cut the input mid-line: all levels must reach the same outcome, down to the error
//      offset, every span and the validation verdict;
//   2b. parsed by a parser that reads everything with the full grammar (no one-pass common forms: start line,
//      Request-URI, top Via, CSeq, Max-Forwards, Content-Length):
//      the outcome must be the same, down to the error code and offset, every span and the hop count; and a
//      message the forwarding path accepted never fails full validation for a display name;
//   2c. the second Via hop (where a proxy sends a response) read in place after the top hop must be the hop, or the
//      error, that splitting the Vias into elements and parsing the second with the full grammar gives;
//   3. parsed as a stream, which must agree with the datagram outcome (it differs only by requiring Content-Length);
//   4. run through the raw control-character search of every SIMD level, which must agree byte for byte;
//   5. searched for the validator's attack patterns and blocked agents at every SIMD level (Teddy prefilter), which
//      must find the same pattern as the scalar search, on the whole input and on spans and masks from its bytes;
//   6. searched header by header in one call (csip_patterns_find_headers, as the validator does) at every level,
//      which must find the same pattern and line as the scalar search run on each span in order;
//   7. read as a client's WebSocket stream (RFC 6455 framing: masking, the three length encodings, fragments with
//      control frames between them, close), whole and in chunks, which must give exactly the events of a plain
//      byte-by-byte reading of the RFC (referenceWebSocketEvents); fed as a connection's borrowed bytes too;
//   8. read as a WebSocket upgrade request (RFC 6455 §4) under a policy with paths and origins: the outcome is
//      the same whole and with bytes appended after the head, a refusal is one of the fixed responses (nothing of
//      the request echoed), an acceptance consumes exactly the head and answers 101 with the sip subprotocol.
// A disagreement is a fatalError, which libFuzzer reports as a crash with the input saved as an artifact.
//
// main.swift starts libFuzzer (LLVMFuzzerRunDriver), which calls LLVMFuzzerTestOneInput below for every input.

import SIPBytes
import SIPParsing
import SIPSecurity

// MARK: - Parsers, created once (a fuzz harness is single-threaded)

let simdLevels: [SIMDLevel] = [.scalar, .sse42, .avx2].filter { MessageScanner.supports($0) }

nonisolated(unsafe) let mainParser: SIPParser = try! SIPParser()
nonisolated(unsafe) let levelParsers: [SIPParser] = simdLevels.map { try! SIPParser(simd: $0) }
/// The full grammar only: the reference for the one-pass readings of the common forms.
nonisolated(unsafe) let fullGrammarParser: SIPParser = try! SIPParser(readsCommonFormsInOnePass: false)
/// The display-name errors of the headers the forwarding path checks (Path and Service-Route it does not read, so
/// their generic `invalidDisplayName` is full validation's alone).
let displayNameCodes: Set<SIPParseError.Code> = [
    .invalidDisplayNameInFrom, .invalidDisplayNameInTo, .invalidDisplayNameInContact,
    .invalidDisplayNameInRoute, .invalidDisplayNameInRecordRoute,
]
/// Keeps the optimizer from dropping the reads of `touch`.
nonisolated(unsafe) var sink = 0

/// Limits small enough that fuzzed inputs hit every limit path: the message cap falls inside the input, so the
/// scanner's read bound cuts lines, names and CRLFs in half.
func tightLimits(for size: Int) -> ParseLimits {
    ParseLimits(
        scan: ScanLimits(maxMessageSize: UInt32(max(1, size - size / 4)), maxLineLength: 64, maxHeaders: 8),
        maxViaHops: 2, maxURILength: 32)
}

// MARK: - Outcomes

struct Failure: Equatable, CustomStringConvertible {
    var code: SIPParseError.Code
    var offset: UInt32
    init(_ error: SIPParseError) {
        code = error.code
        offset = error.offset
    }
    var description: String { "\(code.rawValue)@\(offset)" }
}

/// Everything a parse produced, as plain values, so outcomes of different parsers can be compared.
struct Summary: Equatable {
    var startLine: StartLine
    var startLineSpan: ByteSpan
    var headers: [HeaderLine]
    var headerSet: HeaderSet
    var headerFlags: HeaderLineFlags
    var body: ByteSpan
    var messageEnd: Int
    var callID: ByteSpan
    var cseq: CSeq
    var fromValue: ByteSpan
    var toValue: ByteSpan
    var fromTag: ByteSpan?
    var toTag: ByteSpan?
    /// From/To parsed on demand (nil when they do not parse; validateAllHeaders reports why).
    var from: NameAddress?
    var to: NameAddress?
    var topVia: ViaHop
    var topViaHeaderIndex: Int
    var viaHopCount: Int
    var maxForwards: UInt8?
    var contentLength: UInt32?
    /// nil when validateAllHeaders accepted the message.
    var validation: Failure?

    init(_ message: SIPMessage, validation: Failure?) {
        startLine = message.startLine
        startLineSpan = message.startLineSpan
        headers = (0..<message.headerCount).map { message.header(at: $0) }
        headerSet = message.headerSet
        headerFlags = message.headerFlags
        body = message.body
        messageEnd = message.messageEnd
        callID = message.callID
        cseq = message.cseq
        fromValue = message.fromValue
        toValue = message.toValue
        fromTag = message.fromTag
        toTag = message.toTag
        from = try? message.fromAddress()
        to = try? message.toAddress()
        topVia = message.topVia
        topViaHeaderIndex = message.topViaHeaderIndex
        viaHopCount = message.viaHopCount
        maxForwards = message.maxForwards
        contentLength = message.contentLength
        self.validation = validation
    }
}

enum Outcome: Equatable, CustomStringConvertible {
    case parsed(Summary)
    case failed(Failure)

    var description: String {
        switch self {
        case .parsed(let s):
            "parsed(headers: \(s.headers.count), body: \(s.body), validation: \(s.validation.map(\.description) ?? "ok"))"
        case .failed(let f): "failed(\(f))"
        }
    }
}

func outcome(_ parser: SIPParser, _ packet: PacketBytes, framing: Framing = .datagram,
             touching: Bool = false) -> Outcome {
    let message: SIPMessage
    do {
        message = try parser.parse(packet, framing: framing)
    } catch {
        return .failed(Failure(error))
    }
    var validation: Failure?
    do {
        try parser.validateAllHeaders(message)
    } catch {
        validation = Failure(error)
    }
    if touching { sink &+= touch(message) }
    return .parsed(Summary(message, validation: validation))
}

// MARK: - Reading every span back

@inline(never)
func touch(_ m: SIPMessage) -> Int {
    let bytes = m.bytes
    var h = 0
    func read(_ span: ByteSpan?) {
        guard let span else { return }
        h &+= m.string(span).utf8.count
        h &+= bytes.copyBytes(span).count
    }
    func read(_ uri: SIPURI) {
        read(uri.span); read(uri.user); read(uri.password); read(uri.host); read(uri.parameters); read(uri.headers)
        h &+= Int(uri.port ?? 0)
        h &+= uri.hasParameter("lr", in: bytes) ? 1 : 0
        if let p = uri.parameter("transport", in: bytes) { read(p.name); read(p.value) }
    }
    func read(_ address: NameAddress) {
        read(address.span); read(address.displayName); read(address.parameters); read(address.tag)
        read(address.uri)
        if let p = address.parameter("tag", in: bytes) { read(p.name); read(p.value) }
        if let p = address.parameter("expires", in: bytes) { read(p.name); read(p.value) }
    }

    precondition(m.body.end == m.messageEnd && m.messageEnd <= bytes.count, "body outside the message")
    read(m.startLineSpan)
    switch m.startLine {
    case .request(let line):
        read(line.method.span); read(line.version); read(line.uri)
        h &+= line.method.description.utf8.count
    case .response(let line):
        read(line.version); read(line.reasonPhrase)
        h &+= Int(line.statusCode)
    }
    read(m.body)
    read(m.callID)
    read(m.cseq.method.span)
    h &+= Int(m.cseq.number) &+ m.method.description.utf8.count

    let via = m.topVia
    read(via.span); read(via.protocolName); read(via.protocolVersion); read(via.transport); read(via.host)
    read(via.parameters); read(via.branch); read(via.received); read(via.maddr)
    h &+= Int(via.port ?? 0) &+ Int(via.ttl ?? 0) &+ (via.hasRFC3261Branch(in: bytes) ? 1 : 0)
    if let p = via.parameter("branch", in: bytes) { read(p.name); read(p.value) }
    if case .value(let port) = via.rport { h &+= Int(port) }
    read(m.fromValue)
    read(m.toValue)
    read(m.fromTag)
    read(m.toTag)
    if let from = try? m.fromAddress() { read(from) }
    if let to = try? m.toAddress() { read(to) }

    for index in 0..<m.headerCount {
        let line = m.header(at: index)
        read(line.name)
        read(line.value)
        let kind = m.kind(at: index)
        precondition(kind.code == line.kindCode, "kind(at:) disagrees with header(at:)")
        h &+= Int(line.kindCode) &+ Int(line.flags.rawValue) &+ (kind.canonicalName?.utf8.count ?? 0)
        if kind != .other {
            precondition(m.headerSet.contains(kind), "headerSet misses a kind present in the headers")
        }
    }
    precondition(m.topViaHeaderIndex >= 0 && m.topViaHeaderIndex < m.headerCount
        && m.kind(at: m.topViaHeaderIndex) == .via, "top Via index is not a Via line")
    for kind in [HeaderKind.via, .contact, .route, .recordRoute, .supported] {
        var index = m.firstIndex(of: kind)
        while let current = index {
            precondition(m.kind(at: current) == kind, "firstIndex/nextIndex returned another kind")
            index = m.nextIndex(of: kind, after: current)
        }
        // Elements may legitimately fail to split (an unterminated quote in a header parse did not look at).
        try? m.forEachElement(of: kind) { (element) throws(SIPParseError) in read(element) }
        if let line = m.firstHeader(kind) { read(line.value) }
    }
    if let line = m.firstHeader(named: "call-id") { read(line.value) }
    return h
}

// MARK: - Checks

func mismatch(_ what: String, _ a: String, _ b: String) -> Never {
    fatalError("SIPParserFuzzer: \(what) disagree:\n  \(a)\n  \(b)")
}

/// Header kinds: the scanner's hashed index (shared by every level) must give each scanned name the kind the
/// full-table lookup gives it.
nonisolated(unsafe) let kindScanner = try! MessageScanner(simd: .auto, headerCapacity: 256)
func checkHeaderKinds(_ input: [UInt8], _ packet: PacketBytes) {
    guard case .complete(_, let count, _, _) = kindScanner.scan(packet) else { return }
    for index in 0..<count {
        let line = kindScanner.headers[index]
        let name = Array(input[line.name.start..<line.name.end])
        let expected = MessageScanner.classifyHeader(name)
        if line.kindCode != expected {
            mismatch("kind of \(name)", "table: \(expected)", "index: \(line.kindCode)")
        }
    }
}

/// Raw control-character search: every SIMD level must find the same index as scalar.
func checkFindControl(_ input: [UInt8]) {
    guard simdLevels.count > 1 else { return }
    let n = input.count
    var ranges = [(0, n)]
    if n > 0 {
        let from = Int(input[0]) % n
        let to = n - Int(input[n - 1]) % (n - from)
        ranges.append((from, to))
    }
    for (from, to) in ranges {
        let expected = MessageScanner.findControl(in: input, from: from, to: to, level: .scalar)
        for level in simdLevels.dropFirst() {
            let found = MessageScanner.findControl(in: input, from: from, to: to, level: level)
            if found != expected {
                mismatch("findControl(\(from)..<\(to))", "scalar: \(String(describing: expected))",
                         "\(level): \(String(describing: found))")
            }
        }
    }
}

/// The validator's attack patterns (SIPSecurity keeps them internal; same list) and its default blocked agents.
let attackPatterns: [[UInt8]] = [
    "' or ", "'or ", "' and ", "'--", "';", "' union", "union select", "union all select", "select * from",
    "drop table", "insert into", "delete from", "xp_cmdshell", "sleep(", "benchmark(", "waitfor delay", "or 1=1",
    "1=1--", "<script", "</script", "javascript:", "vbscript:", "onerror=", "onload=", "onmouseover=", "<img",
    "<iframe", "<svg", "<body", "<object", "<embed", "document.cookie", "alert(", "$(", "${", "&&", "||", "|sh",
    "| sh", "; rm ", ";rm ", "/bin/sh", "/bin/bash", "wget ", "curl ", "nc -", "`id`", "`whoami`", "`uname",
    "../", "..\\", "..%2f", "..%5c", "%2e%2e", "/etc/passwd", "%0d", "%0a",
].map { Array($0.utf8) }
let agentPatterns = SecurityConfiguration().blockedUserAgents.map { Array($0.utf8) }
/// Scalar first, then every SIMD level: word-start sets (attack patterns) and substring sets (agents).
nonisolated(unsafe) let attackSets = simdLevels.map { PatternSet(attackPatterns, simd: $0) }
nonisolated(unsafe) let agentSets = simdLevels.map { PatternSet(agentPatterns, wordStart: false, simd: $0) }

/// Multi-pattern search: every SIMD level (Teddy prefilter) must find the same pattern as scalar, on the whole
/// input and on spans and masks taken from its bytes.
func checkPatterns(_ input: [UInt8], _ packet: PacketBytes) {
    guard simdLevels.count > 1 else { return }
    let n = input.count
    var ranges: [(Int, Int, UInt64)] = [(0, n, ~0)]
    for k in 0..<min(n, 16) {
        let from = Int(input[k]) % n
        let to = from + Int(input[n - 1 - k]) % (n - from + 1)
        ranges.append((from, to, k % 3 == 2 ? UInt64(input[k]) &* 0x9E37_79B9_7F4A_7C15 : ~0))
    }
    for (name, sets) in [("attack patterns", attackSets), ("agents", agentSets)] {
        for (from, to, enabled) in ranges {
            let span = ByteSpan(from: from, to: to)
            let expected = sets[0].firstMatch(in: packet, span, mask: enabled)
            for (level, set) in zip(simdLevels, sets).dropFirst() {
                let found = set.firstMatch(in: packet, span, mask: enabled)
                if found != expected {
                    mismatch("\(name) firstMatch(\(from)..<\(to), mask \(enabled))",
                             "scalar: \(String(describing: expected))", "\(level): \(String(describing: found))")
                }
            }
        }
    }
}

/// The validator's kind mask (headers it searches for attack patterns) and the User-Agent mask.
let scannedKinds: UInt64 = ~[HeaderKind.via, .cseq, .callID, .contentLength, .maxForwards, .contentType]
    .reduce(HeaderSet()) { $0.union(HeaderSet($1)) }.rawValue
let agentKinds: UInt64 = HeaderSet(.userAgent).rawValue

/// The one-call header search (csip_patterns_find_headers) at every level, scalar included, must find what the
/// scalar single-span search finds over the Request-URI and then each selected header line in order: same pattern,
/// same line. Run on every parsed message, with the validator's masks and masks taken from the input.
func checkHeaderSearch(_ input: [UInt8], _ message: SIPMessage) {
    let packet = message.bytes
    let table = message.headerTable
    let count = message.headerCount
    let seed = input.isEmpty ? 0 : UInt64(input[input.count / 2])
    let masks: [(UInt64, UInt64)] = [(scannedKinds, ~0), (agentKinds, ~0), (~0, seed &* 0x9E37_79B9_7F4A_7C15),
                                     (seed &* 0xBF58_476D_1CE4_E5B9, ~0)]
    for (name, sets) in [("attack patterns", attackSets), ("agents", agentSets)] {
        for (kinds, enabled) in masks {
            for first in [message.requestLine?.uri.span, nil] {
                var expected: (pattern: Int, line: Int?)?
                if let first, let found = sets[0].firstMatch(in: packet, first, mask: enabled) {
                    expected = (found, nil)
                } else {
                    for i in 0..<count where kinds >> UInt64(message.kind(at: i).code) & 1 == 1 {
                        if let found = sets[0].firstMatch(in: packet, message.header(at: i).value, mask: enabled) {
                            expected = (found, i)
                            break
                        }
                    }
                }
                for (level, set) in zip(simdLevels, sets) {
                    let found = set.firstMatch(in: packet, first: first, headers: table, count: count, kinds: kinds,
                                               mask: enabled)
                    if found?.pattern != expected?.pattern || found?.line != expected?.line {
                        mismatch("\(name) header search (kinds \(kinds), mask \(enabled))",
                                 "per span (scalar): \(String(describing: expected))",
                                 "\(level): \(String(describing: found))")
                    }
                }
            }
        }
    }
}

/// 2c. A response's next hop read in place (SIPMessage.secondViaHop) against the element split and full grammar.
func checkSecondHop(_ message: SIPMessage) {
    enum HopOutcome: Equatable {
        case hop(ViaHop?)
        case failed(Failure)
    }
    var direct: HopOutcome, split: HopOutcome
    do throws(SIPParseError) { direct = .hop(try message.secondViaHop()) } catch { direct = .failed(Failure(error)) }
    do throws(SIPParseError) {
        split = .hop(try message.element(at: 1, of: .via).map { span throws(SIPParseError) in
            try ViaHop.parse(message.bytes, span)
        })
    } catch { split = .failed(Failure(error)) }
    if direct != split { mismatch("second Via hop", "split: \(split)", "in place: \(direct)") }
}

/// Stream framing differs from datagram framing only in requiring Content-Length (checked after everything else).
func checkStream(datagram: Outcome, stream: Outcome) {
    switch datagram {
    case .failed:
        if stream != datagram { mismatch("datagram and stream", "datagram: \(datagram)", "stream: \(stream)") }
    case .parsed(let summary):
        if summary.contentLength != nil {
            if stream != datagram { mismatch("datagram and stream", "datagram: \(datagram)", "stream: \(stream)") }
        } else {
            guard case .failed(let failure) = stream, failure.code == .missingContentLength else {
                mismatch("datagram and stream (no Content-Length)", "datagram: \(datagram)", "stream: \(stream)")
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    input.withPacketBytes { packet in
        let datagram = outcome(mainParser, packet, touching: true)

        fuzzWebSocket(input)
        fuzzWebSocketHandshake(input)
        let fullGrammar = outcome(fullGrammarParser, packet)
        if fullGrammar != datagram { mismatch("one-pass common forms", "full grammar: \(fullGrammar)", "one pass: \(datagram)") }
        // The forwarding path's display-name check (NameAddress.checkForm) is never weaker than the full parse of
        // the address: a message it let through does not fail full validation for a display name.
        if case .parsed(let summary) = datagram, let failure = summary.validation, displayNameCodes.contains(failure.code) {
            mismatch("display-name check", "forwarding path: accepted", "full validation: \(failure)")
        }

        for (level, parser) in zip(simdLevels, levelParsers) {
            let other = outcome(parser, packet)
            if other != datagram { mismatch("SIMD levels", "auto: \(datagram)", "\(level): \(other)") }
        }

        let limits = tightLimits(for: size)
        var tightReference: Outcome?
        for level in simdLevels {
            let parser = try! SIPParser(limits: limits, simd: level)
            let tight = outcome(parser, packet, touching: true)
            if let reference = tightReference {
                if tight != reference {
                    mismatch("SIMD levels (tight limits)", "\(simdLevels[0]): \(reference)", "\(level): \(tight)")
                }
            } else {
                tightReference = tight
            }
        }

        checkHeaderKinds(input, packet)

        let stream = outcome(mainParser, packet, framing: .stream, touching: true)
        checkStream(datagram: datagram, stream: stream)

        // The edge policy runs on whatever parsed: it must never trap, whatever the bytes.
        if let message = try? mainParser.parse(packet) {
            _ = policy.validate(message, fromPublicSide: true)
            // Over a stream the per-line walk of spaced colons runs with the stream list too.
            _ = policy.validate(message, fromPublicSide: true, overStream: true)
            checkHeaderSearch(input, message)
            checkSecondHop(message)
        }
        // Stream framing of the same bytes: a frame must lie inside the input, and a message frame must start
        // a parse that needs no more bytes than the frame holds.
        switch StreamFramer.nextFrame(in: packet, scanner: framerScanner) {
        case .message(let span):
            if span.end > size { mismatch("stream frame", "input \(size) bytes", "frame \(span)") }
        case .ping(let consumed), .padding(let consumed):
            if consumed > size || consumed == 0 { mismatch("stream keep-alive", "input \(size) bytes", "consumed \(consumed)") }
        case .needMore, .invalid:
            break
        }
        checkPatterns(input, packet)
    }
    checkFindControl(input)
    return 0
}

nonisolated(unsafe) let policy = SecurityValidator(configuration: SecurityConfiguration())
nonisolated(unsafe) let framerScanner = try! MessageScanner()

// MARK: - WebSocket framing (RFC 6455 §5), against a plain reading of the RFC

/// The events a server reading `bytes` as one client stream must produce, read by the simplest code that follows
/// RFC 6455 §5.2-5.5 byte by byte: the reference for the C header reader and WebSocketAssembler.
func referenceWebSocketEvents(_ bytes: [UInt8], maxMessage: Int) -> [WebSocketAssembler.Event] {
    var events: [WebSocketAssembler.Event] = []
    var index = 0
    var fragments: [UInt8] = []
    var fragmentedIsText: Bool?
    func byte(_ at: Int) -> Int? { at < bytes.count ? Int(bytes[at]) : nil }
    while let first = byte(index), let second = byte(index + 1) {
        let fin = first & 0x80 != 0, opcode = first & 0x0F, masked = second & 0x80 != 0
        if first & 0x70 != 0 || ![0, 1, 2, 8, 9, 10].contains(opcode) { events.append(.failed(code: 1002)); return events }
        var length = UInt64(second & 0x7F)
        var position = index + 2
        if length == 126 {
            guard let high = byte(position), let low = byte(position + 1) else { return events }
            length = UInt64(high << 8 | low)
            position += 2
            if length < 126 { events.append(.failed(code: 1002)); return events }
        } else if length == 127 {
            guard position + 8 <= bytes.count else { return events }
            length = bytes[position..<(position + 8)].reduce(0) { $0 << 8 | UInt64($1) }
            position += 8
            if length >> 63 != 0 || length <= 0xFFFF { events.append(.failed(code: 1002)); return events }
        }
        let isControl = opcode & 0x08 != 0
        if isControl && (length > 125 || !fin) { events.append(.failed(code: 1002)); return events }
        if length > UInt64(maxMessage) { events.append(.failed(code: 1009)); return events }
        if !masked { events.append(.failed(code: 1002)); return events }
        guard position + 4 <= bytes.count else { return events }
        let key = Array(bytes[position..<(position + 4)])
        position += 4
        guard position + Int(length) <= bytes.count else { return events }
        let payload = (0..<Int(length)).map { bytes[position + $0] ^ key[$0 % 4] }
        index = position + Int(length)
        switch opcode {
        case 9: events.append(.ping(payload))
        case 10: events.append(.pong(payload))
        case 8:
            if payload.isEmpty { events.append(.close(code: 1005, reason: [])); return events }
            if payload.count < 2 { events.append(.failed(code: 1002)); return events }
            events.append(.close(code: UInt16(payload[0]) << 8 | UInt16(payload[1]), reason: Array(payload[2...])))
            return events
        case 1, 2:
            if fragmentedIsText != nil { events.append(.failed(code: 1002)); return events }
            if fin { events.append(.message(payload, isText: opcode == 1)) } else {
                fragmentedIsText = opcode == 1
                fragments = payload
            }
        default:  // continuation
            guard let isText = fragmentedIsText else { events.append(.failed(code: 1002)); return events }
            if fragments.count + payload.count > maxMessage { events.append(.failed(code: 1009)); return events }
            fragments += payload
            if fin {
                events.append(.message(fragments, isText: isText))
                fragments = []
                fragmentedIsText = nil
            }
        }
    }
    return events
}

/// 7. the input as a client's WebSocket stream: WebSocketAssembler, fed whole and in chunks whose sizes come from
/// the input, must produce exactly the reference's events.
func fuzzWebSocket(_ input: [UInt8]) {
    let maxMessage = 4_096
    let expected = referenceWebSocketEvents(input, maxMessage: maxMessage)
    var whole = WebSocketAssembler(maxMessage: maxMessage)
    let wholeEvents = whole.feed(input[...])
    if wholeEvents != expected { mismatch("WebSocket framing", "reference: \(expected)", "assembler: \(wholeEvents)") }
    var chunked = WebSocketAssembler(maxMessage: maxMessage)
    var chunkedEvents: [WebSocketAssembler.Event] = []
    var index = 0
    var step = 0
    while index < input.count {
        let size = 1 + Int(input[step % input.count]) % 97
        chunkedEvents += chunked.feed(input[index..<min(index + size, input.count)])
        index += size
        step += 1
    }
    if chunkedEvents != expected { mismatch("WebSocket framing in chunks", "reference: \(expected)", "assembler: \(chunkedEvents)") }
    var borrowed = WebSocketAssembler(maxMessage: maxMessage)
    let borrowedEvents = input.withPacketBytes { borrowed.feed($0) }
    if borrowedEvents != expected { mismatch("WebSocket framing, borrowed", "reference: \(expected)", "assembler: \(borrowedEvents)") }
}

let handshakePolicy: WebSocketHandshakePolicy = {
    var policy = WebSocketHandshakePolicy()
    policy.paths = ["/", "/ws"]
    policy.allowedOrigins = ["https://phone.example.com", "*.example.net"]
    policy.maxHeaderBytes = 2_048
    return policy
}()

/// 8. the input as an upgrade request.
func fuzzWebSocketHandshake(_ input: [UInt8]) {
    let outcome = WebSocketHandshake.read(input, policy: handshakePolicy)
    switch outcome {
    case .needMore:
        if input.count > handshakePolicy.maxHeaderBytes { mismatch("handshake bound", "more than the limit", "needMore") }
    case .refuse(let status, let response):
        let fixed = response.allSatisfy { $0 == 0x0D || $0 == 0x0A || ($0 >= 0x20 && $0 < 0x7F) } && response.count < 160
        if ![400, 403, 404, 426, 431].contains(status) || !fixed {
            mismatch("handshake refusal", "a fixed 400/403/404/426/431", String(decoding: response, as: UTF8.self))
        }
    case .accept(let response, let consumed, let path, _):
        let text = String(decoding: response, as: UTF8.self)
        if consumed > input.count || !text.hasPrefix("HTTP/1.1 101 ") || !text.contains("Sec-WebSocket-Protocol: sip\r\n")
            || !handshakePolicy.paths.contains(path) {
            mismatch("handshake acceptance", "101 for an allowed path", "\(text) path \(path) consumed \(consumed)")
        }
        // Frames may follow the head in the same read: they must not change the verdict.
        let extended = WebSocketHandshake.read(input + [0x81, 0x80, 1, 2, 3, 4], policy: handshakePolicy)
        if extended != outcome { mismatch("handshake with trailing bytes", "\(outcome)", "\(extended)") }
    }
}
