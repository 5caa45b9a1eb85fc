import Foundation
import SIPBytes
import SIPTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

func scan(_ text: String, limits: ScanLimits = ScanLimits(), level: SIMDLevel = .auto,
          headerCapacity: Int = 256) throws -> (ScanOutcome, [HeaderLine], [UInt8]) {
    let scanner = try MessageScanner(simd: level, headerCapacity: headerCapacity)
    let bytes = Array(text.utf8)
    let outcome = bytes.withPacketBytes { scanner.scan($0, limits: limits) }
    var lines: [HeaderLine] = []
    if case .complete(_, let count, _, _) = outcome {
        for i in 0..<count { lines.append(scanner.headers[i]) }
    }
    return (outcome, lines, bytes)
}

func text(_ bytes: [UInt8], _ span: ByteSpan) -> String {
    String(decoding: bytes[span.start..<span.end], as: UTF8.self)
}

@Suite struct MessageScannerTests {
    static let supportedLevels = SIMDLevel.allCases.filter { $0 != .auto && MessageScanner.supports($0) }

    @Test func everySIMDLevelFindsTheSameControlCharacter() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<2_000 {
            let length = Int.random(in: 0...200, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0x20...0xFF, using: &rng) }
            // Sprinkle a few control characters (and DEL) at random places, sometimes none.
            for _ in 0..<Int.random(in: 0...2, using: &rng) where length > 0 {
                bytes[Int.random(in: 0..<length, using: &rng)] = [0x00, 0x09, 0x0D, 0x0A, 0x1F, 0x7F].randomElement(using: &rng)!
            }
            let from = length == 0 ? 0 : Int.random(in: 0..<length, using: &rng)
            let scalar = MessageScanner.findControl(in: bytes, from: from, to: length, level: .scalar)
            for level in Self.supportedLevels {
                #expect(MessageScanner.findControl(in: bytes, from: from, to: length, level: level) == scalar,
                        "level \(level) length \(length) from \(from)")
            }
        }
    }

    @Test func bytesAboveDELAreNotControlCharacters() {
        let bytes: [UInt8] = Array(repeating: 0x80, count: 40) + [0xFF, 0x7F]
        for level in Self.supportedLevels {
            #expect(MessageScanner.findControl(in: bytes, from: 0, to: bytes.count, level: level) == 41)
        }
    }

    @Test func findsStartLineHeadersAndBody() throws {
        let (outcome, lines, bytes) = try scan("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nl: 4\r\n\r\nbody")
        guard case .complete(let startLine, let count, let bodyOffset, _) = outcome else {
            Issue.record("expected complete, got \(outcome)")
            return
        }
        #expect(text(bytes, startLine) == "INVITE sip:a@b SIP/2.0")
        #expect(count == 2)
        #expect(text(bytes, lines[0].name) == "Via")
        #expect(text(bytes, lines[0].value) == "SIP/2.0/UDP h")
        #expect(lines[1].kindCode == MessageScanner.classifyHeader(Array("Content-Length".utf8)))
        #expect(lines[1].flags.contains(.compact))
        #expect(String(decoding: bytes[bodyOffset...], as: UTF8.self) == "body")
    }

    @Test func foldedValueSpansItsContinuationLines() throws {
        let (outcome, lines, bytes) = try scan("OPTIONS sip:a SIP/2.0\r\nSubject: one\r\n  two\r\n\tthree  \r\nTo:\r\n x\r\n\r\n")
        guard case .complete = outcome else {
            Issue.record("expected complete, got \(outcome)")
            return
        }
        #expect(text(bytes, lines[0].value) == "one\r\n  two\r\n\tthree")
        #expect(lines[0].flags.contains(.folded))
        // A value that starts on the continuation line is not "folded": it has no CRLF inside.
        #expect(text(bytes, lines[1].value) == "x")
        #expect(!lines[1].flags.contains(.folded))
    }

    @Test func leadingCRLFsAreSkippedAndOnlyCRLFsIsEmpty() throws {
        let (outcome, _, bytes) = try scan("\r\n\r\nBYE sip:a SIP/2.0\r\n\r\n")
        guard case .complete(let startLine, _, _, _) = outcome else {
            Issue.record("expected complete")
            return
        }
        #expect(text(bytes, startLine) == "BYE sip:a SIP/2.0")
        #expect(try scan("\r\n\r\n").0 == .invalid(.empty, offset: 4))
    }

    @Test(arguments: [
        ("A sip:a SIP/2.0\nVia: x\r\n\r\n", ScanError.bareLineFeed),
        ("A sip:a SIP/2.0\r\nVia: x\ry\r\n\r\n", .bareCarriageReturn),
        ("A sip:a SIP/2.0\r\nVia: x\r\n\n", .bareLineFeed),
        ("A sip:\0a SIP/2.0\r\n\r\n", .nulByte),
        ("A sip:\u{7}a SIP/2.0\r\n\r\n", .controlCharacter),
        ("A sip:a SIP/2.0\r\n: x\r\n\r\n", .emptyHeaderName),
        ("A sip:a SIP/2.0\r\nVi(a: x\r\n\r\n", .invalidHeaderName),
        ("A sip:a SIP/2.0\r\nVia x\r\n\r\n", .missingColon),
        ("A sip:a SIP/2.0\r\nVia\r\n\r\n", .missingColon),
        ("A sip:a SIP/2.0\r\n folded: x\r\n\r\n", .foldedStartLine),
    ])
    func malformedFramingIsRefusedWithItsReason(_ message: String, _ expected: ScanError) throws {
        guard case .invalid(let error, _) = try scan(message).0 else {
            Issue.record("expected \(expected)")
            return
        }
        #expect(error == expected)
    }

    @Test func spaceBeforeColonIsFlaggedNotRefused() throws {
        let (outcome, lines, _) = try scan("A sip:a SIP/2.0\r\nVia  : x\r\nTo: y\r\n\r\n")
        guard case .complete(_, _, _, let flags) = outcome else {
            Issue.record("expected complete")
            return
        }
        #expect(flags.contains(.spaceBeforeColon))
        #expect(lines[0].flags.contains(.spaceBeforeColon))
        #expect(!lines[1].flags.contains(.spaceBeforeColon))
    }

    @Test func controlCharactersInValuesAreFlaggedForTheParser() throws {
        let (outcome, lines, _) = try scan("A sip:a SIP/2.0\r\nTo: \"a\\\0b\" <sip:x>\r\n\r\n")
        guard case .complete = outcome else {
            Issue.record("expected complete, got \(outcome)")
            return
        }
        #expect(lines[0].flags.contains(.controlCharacters))
    }

    @Test func headersThatDoNotEndAreIncompleteUntilTheSizeCap() throws {
        #expect(try scan("INVITE sip:a SIP/2.0\r\nVia: x\r\n").0 == .incomplete)
        #expect(try scan("INVITE sip:a SIP/2.0\r\nVia: x\r").0 == .incomplete)
        #expect(try scan("INVITE sip:a SIP/2.0\r\nVi").0 == .incomplete)
        let big = "INVITE sip:a SIP/2.0\r\n" + String(repeating: "X-Filler: 0123456789\r\n", count: 100)
        let limits = ScanLimits(maxMessageSize: 1_000)
        guard case .invalid(.messageTooLarge, _) = try scan(big, limits: limits).0 else {
            Issue.record("expected messageTooLarge")
            return
        }
    }

    @Test func limitsOnLinesAndHeaderCountAreEnforced() throws {
        let longLine = "A sip:a SIP/2.0\r\nSubject: " + String(repeating: "x", count: 200) + "\r\n\r\n"
        #expect(try scan(longLine, limits: ScanLimits(maxLineLength: 100)).0 == .invalid(.lineTooLong, offset: 17))
        #expect(try scan(longLine, limits: ScanLimits(maxLineLength: 300)).0 != .invalid(.lineTooLong, offset: 17))
        // A fold counts toward the header's length: many short continuation lines cannot dodge the limit.
        let folded = "A sip:a SIP/2.0\r\nSubject: x" + String(repeating: "\r\n xxxxxxxxx", count: 20) + "\r\n\r\n"
        guard case .invalid(.lineTooLong, _) = try scan(folded, limits: ScanLimits(maxLineLength: 100)).0 else {
            Issue.record("folded header should count as one long line")
            return
        }
        let many = "A sip:a SIP/2.0\r\n" + String(repeating: "X: 1\r\n", count: 11) + "\r\n"
        guard case .invalid(.tooManyHeaders, _) = try scan(many, limits: ScanLimits(maxHeaders: 10)).0 else {
            Issue.record("expected tooManyHeaders")
            return
        }
        guard case .complete = try scan(many, limits: ScanLimits(maxHeaders: 11)).0 else {
            Issue.record("11 headers fit a limit of 11")
            return
        }
        // The caller's header capacity bounds the count too, whatever the limit says.
        guard case .invalid(.tooManyHeaders, _) = try scan(many, headerCapacity: 5).0 else {
            Issue.record("capacity must bound the header count")
            return
        }
    }

    @Test func headerKindsCoverFullAndCompactFormsInAnyCase() {
        func kind(_ name: String) -> UInt16 { MessageScanner.classifyHeader(Array(name.utf8)) }
        let pairs = [("v", "Via"), ("i", "Call-ID"), ("l", "Content-Length"), ("m", "Contact"), ("f", "From"),
                     ("t", "To"), ("c", "Content-Type"), ("e", "Content-Encoding"), ("k", "Supported"),
                     ("s", "Subject"), ("o", "Event"), ("u", "Allow-Events"), ("r", "Refer-To"), ("b", "Referred-By"),
                     ("x", "Session-Expires")]
        for (compact, full) in pairs {
            #expect(kind(compact) == kind(full), "\(compact)")
            #expect(kind(compact.uppercased()) == kind(full))
            #expect(kind(full.uppercased()) == kind(full))
            #expect(kind(full) != 0)
        }
        #expect(kind("X-Custom") == 0)
        #expect(kind("Vias") == 0)
        #expect(kind("q") == 0)
        for code in 1..<UInt16(MessageScanner.kindCount) {
            let name = MessageScanner.canonicalName(ofKind: code)!
            #expect(kind(name) == code, "\(name)")
        }
        #expect(MessageScanner.kindCount <= 64)
    }

    @Test func everySIMDLevelScansTheTortureCorpusIdentically() throws {
        // The corpus lives with the parser tests; reach it by path from this file.
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../SIPParsingTests/Corpus/RFC4475").standardized
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sip") }
        #expect(files.count >= 49)
        for file in files {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(file)))
            var reference: (ScanOutcome, [HeaderLine])?
            for level in Self.supportedLevels {
                let scanner = try MessageScanner(simd: level)
                let outcome = bytes.withPacketBytes { scanner.scan($0) }
                var lines: [HeaderLine] = []
                if case .complete(_, let count, _, _) = outcome { lines = (0..<count).map { scanner.headers[$0] } }
                if let reference {
                    #expect(reference.0 == outcome && reference.1 == lines, "\(file) differs at \(level)")
                } else {
                    reference = (outcome, lines)
                }
            }
        }
    }

    /// The SIMD levels walk 64-byte blocks of masks (the last one shifted into place, a message under 64 bytes
    /// copied): lines, names and folds crossing block edges, control characters and CRLFs at block edges, line
    /// lengths at exactly max_line, and every truncation must scan exactly as the scalar level does.
    @Test func everySIMDLevelAgreesAcrossBlockEdgesAndTruncations() throws {
        func outcome(_ bytes: [UInt8], _ level: SIMDLevel, _ limits: ScanLimits) throws -> (ScanOutcome, [HeaderLine]) {
            let scanner = try MessageScanner(simd: level)
            let result = bytes.withPacketBytes { scanner.scan($0, limits: limits) }
            var lines: [HeaderLine] = []
            if case .complete(_, let count, _, _) = result { lines = (0..<count).map { scanner.headers[$0] } }
            return (result, lines)
        }
        var messages: [[UInt8]] = []
        for pad in 0..<70 {
            let filler = String(repeating: "x", count: pad)
            messages.append(Array("INVITE sip:\(filler)@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nContent-Length: 0\r\n\r\n".utf8))
            messages.append(Array("OPTIONS sip:a SIP/2.0\r\nX-\(filler): v\r\nSubject: a\r\n \(filler)\r\n\tb\r\nl: 0\r\n\r\n".utf8))
            // Lines around the fast loop's longest line (191 bytes) and over three blocks.
            let long = String(repeating: "y", count: 60 + pad * 3)
            messages.append(Array("BYE sip:a SIP/2.0\r\nSubject: \(long)\r\nX-\(long): \(filler)\r\nl: 0\r\n\r\n".utf8))
            for control: UInt8 in [0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x7F, 0x80] {
                var bytes = Array("A sip:a SIP/2.0\r\nTo: \(filler)y\r\nFrom: z\r\n\r\n".utf8)
                bytes[23 + pad] = control
                messages.append(bytes)
            }
        }
        for message in messages {
            let lineLengths = [0, 20, 23, 24, 25, 40, 63, 64, 65, 127, 128, 190, 191, 192, 270].map { UInt32($0) }
            for maxLine in lineLengths {
                let limits = ScanLimits(maxLineLength: maxLine == 0 ? 8_192 : maxLine)
                for length in 0...message.count {
                    let prefix = Array(message[0..<length])
                    let reference = try outcome(prefix, .scalar, limits)
                    for level in Self.supportedLevels where level != .scalar {
                        let other = try outcome(prefix, level, limits)
                        #expect(other.0 == reference.0 && other.1 == reference.1,
                                "\(level) length \(length) maxLine \(maxLine): \(String(decoding: prefix, as: UTF8.self))")
                    }
                }
            }
        }
    }

    /// picohttpparser's guard-page harness: the message ends exactly where an inaccessible page begins, so
    /// reading one byte too far crashes the test. Every prefix must scan as incomplete, never over-read.
    @Test func neverReadsPastTheEndOfTheBuffer() throws {
        let message = Array("INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: x\r\n y\r\nl: 0\r\n\r\n".utf8)
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        let region = mmap(nil, pageSize * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        #expect(region != MAP_FAILED)
        guard let region, region != MAP_FAILED else { return }
        defer { munmap(region, pageSize * 2) }
        #expect(mprotect(region + pageSize, pageSize, PROT_NONE) == 0)
        for level in Self.supportedLevels {
            let scanner = try MessageScanner(simd: level)
            for length in 0...message.count {
                let start = region + pageSize - length
                message.withUnsafeBytes { source in
                    UnsafeMutableRawPointer(start).copyMemory(from: source.baseAddress!, byteCount: length)
                }
                let outcome = scanner.scan(PacketBytes(unsafeBorrowing: UnsafeRawBufferPointer(start: start, count: length)))
                if length == message.count {
                    guard case .complete = outcome else {
                        Issue.record("whole message should scan at \(level)")
                        continue
                    }
                } else if length == 0 {
                    #expect(outcome == .invalid(.empty, offset: 0))
                } else {
                    #expect(outcome == .incomplete, "prefix \(length) at \(level)")
                }
            }
        }
    }
}

@Suite struct HeaderIndexTests {
    /// The scanner classifies through a hashed index (csip_scanner.kind_keys); it must agree with the full-table
    /// lookup for every name in the table, in any case, for every compact letter, and for near misses.
    @Test func indexedClassificationAgreesWithTheTable() throws {
        var names: [String] = []
        for code in 1..<UInt16(MessageScanner.kindCount) {
            let name = MessageScanner.canonicalName(ofKind: code)!
            names += [name, name.uppercased(), name.lowercased(), name + "x", String(name.dropLast())]
        }
        names += "abcdefghijklmnopqrstuvwxyz".map { String($0) } + ["X-Foo", "1abc", "_x", "Z"]
        let message = "OPTIONS sip:a SIP/2.0\r\n" + names.map { "\($0): v\r\n" }.joined() + "\r\n"
        let (outcome, lines, bytes) = try scan(message, limits: ScanLimits(maxHeaders: 1_000), headerCapacity: 1_000)
        guard case .complete(_, let count, _, _) = outcome else {
            Issue.record("expected complete, got \(outcome)")
            return
        }
        #expect(count == names.count)
        for line in lines {
            let name = Array(bytes[line.name.start..<line.name.end])
            #expect(line.kindCode == MessageScanner.classifyHeader(name), "\(String(decoding: name, as: UTF8.self))")
        }
    }
}
