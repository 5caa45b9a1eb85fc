import SIPBytes
import SIPParsing
import Testing

/// Builds a request with CRLF line ends; `headers` replace the defaults with the same name.
func request(_ startLine: String = "INVITE sip:bob@example.com SIP/2.0", headers: [String] = [],
             body: String = "", omit: Set<String> = []) -> [UInt8] {
    var lines = [startLine]
    let defaults = [
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
        "Max-Forwards: 70",
        "To: Bob <sip:bob@example.com>",
        "From: Alice <sip:alice@example.com>;tag=1928301774",
        "Call-ID: a84b4c76e66710@pc33.example.com",
        "CSeq: 314159 INVITE",
    ]
    let overridden = Set(headers.map { String($0.prefix { $0 != ":" }) })
    for line in defaults {
        let name = String(line.prefix { $0 != ":" })
        if !overridden.contains(name) && !omit.contains(name) { lines.append(line) }
    }
    lines += headers
    if !overridden.contains("Content-Length") && !omit.contains("Content-Length") {
        lines.append("Content-Length: \(body.utf8.count)")
    }
    return Array((lines.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
}

/// Parses (and with `full`, validates every header); returns the error code or nil.
func parseError(_ bytes: [UInt8], framing: Framing = .datagram, full: Bool = false,
                limits: ParseLimits = ParseLimits()) -> SIPParseError.Code? {
    let parser = try! SIPParser(limits: limits)
    return bytes.withPacketBytes { packet -> SIPParseError.Code? in
        do throws(SIPParseError) {
            let message = try parser.parse(packet, framing: framing)
            if full { try parser.validateAllHeaders(message) }
            return nil
        } catch {
            return error.code
        }
    }
}

/// Parses and hands the message to `check` (inside the borrow).
func withMessage(_ bytes: [UInt8], _ check: (SIPMessage) throws -> Void) throws {
    let parser = try SIPParser()
    try bytes.withPacketBytes { packet in
        let message = try parser.parse(packet)
        try check(message)
    }
}

@Suite struct SIPParserTests {
    @Test func parsesTheFieldsAProxyNeeds() throws {
        try withMessage(request(body: "v=0\r\n")) { message in
            #expect(message.isRequest)
            #expect(message.method.known == .invite)
            let uri = try #require(message.requestLine?.uri)
            #expect(uri.scheme == .sip)
            #expect(message.string(uri.user!) == "bob")
            #expect(message.string(uri.host) == "example.com")
            #expect(message.string(message.callID) == "a84b4c76e66710@pc33.example.com")
            #expect(message.cseq.number == 314_159)
            #expect(message.cseq.method.known == .invite)
            #expect(message.maxForwards == 70)
            #expect(message.string(message.fromTag!) == "1928301774")
            #expect(message.toTag == nil)
            #expect(message.string(try message.fromAddress().displayName!) == "Alice")
            #expect(message.string(try message.toAddress().uri.user!) == "bob")
            #expect(message.string(message.topVia.branch!) == "z9hG4bK776asdhds")
            #expect(message.topVia.hasRFC3261Branch(in: message.bytes))
            #expect(message.string(message.topVia.host) == "192.0.2.1")
            #expect(message.topVia.port == 5060)
            // Where the proxy writes `=port`: just after the name.
            guard case .requested(let nameEnd) = message.topVia.rport else {
                Issue.record("rport not requested: \(message.topVia.rport)")
                return
            }
            #expect(message.string(ByteSpan(from: nameEnd - 5, to: nameEnd)) == "rport")
            #expect(message.string(message.topVia.transport) == "UDP")
            #expect(message.contentLength == 5)
            #expect(message.string(message.body) == "v=0\r\n")
            #expect(message.headerSet.contains(.callID))
            #expect(!message.headerSet.contains(.route))
        }
    }

    @Test func compactFormsAreTheSameHeaders() throws {
        let bytes = Array(("OPTIONS sip:a@b.example SIP/2.0\r\nv: SIP/2.0/TCP h.example;branch=z9hG4bKx\r\n"
            + "f: <sip:c@d.example>;tag=9\r\nt: sip:a@b.example\r\ni: call-1\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n").utf8)
        try withMessage(bytes) { message in
            #expect(message.string(message.callID) == "call-1")
            #expect(message.string(message.fromTag!) == "9")
            #expect(message.contentLength == 0)
            let to = try message.toAddress()
            #expect(!to.isBracketed)
        }
    }

    @Test func parsesResponses() throws {
        let bytes = Array(("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1;received=192.0.2.4;rport=5062\r\n"
            + "Via: SIP/2.0/UDP b.example;branch=z9hG4bK2\r\nTo: <sip:b@x>;tag=t\r\nFrom: <sip:a@x>;tag=f\r\n"
            + "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").utf8)
        try withMessage(bytes) { message in
            #expect(!message.isRequest)
            #expect(message.statusLine?.statusCode == 180)
            #expect(message.string(message.statusLine!.reasonPhrase) == "Ringing")
            #expect(message.method.known == .invite)
            #expect(message.viaHopCount == 2)
            #expect(message.string(message.topVia.received!) == "192.0.2.4")
            #expect(message.topVia.rport == .value(5062))
        }
    }

    @Test(arguments: [("SIP/2.0 99 Low", SIPParseError.Code.invalidStatusCode), ("SIP/2.0 700 High", .invalidStatusCode),
                      ("SIP/2.0 2000 Long", .invalidStatusCode), ("SIP/3.0 200 OK", .unsupportedSIPVersion),
                      ("SIP/2.0 20x OK", .invalidStatusCode)])
    func refusesBadStatusLines(_ line: String, _ expected: SIPParseError.Code) {
        let bytes = Array((line + "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;tag=f\r\n"
            + "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").utf8)
        #expect(parseError(bytes) == expected)
    }

    @Test(arguments: ["SIP/2.0 100 Trying", "SIP/2.0 699 Whatever", "SIP/2.0 200 ", "SIP/2.0 200 Okay \u{00e9}t\u{00e9}"])
    func acceptsStatusLinesAtTheEdges(_ line: String) {
        let bytes = Array((line + "\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@x>\r\nFrom: <sip:a@x>;tag=f\r\n"
            + "Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").utf8)
        #expect(parseError(bytes) == nil)
    }

    @Test func maxForwardsMustFitEightBits() {
        #expect(parseError(request(headers: ["Max-Forwards: 255"])) == nil)
        #expect(parseError(request(headers: ["Max-Forwards: 256"])) == .maxForwardsOutOfRange)
        #expect(parseError(request(headers: ["Max-Forwards: -1"])) == .invalidMaxForwards)
        #expect(parseError(request(headers: ["Max-Forwards: 7 7"])) == .invalidMaxForwards)
        #expect(parseError(request(omit: ["Max-Forwards"])) == nil)
    }

    @Test func cseqMustFitThirtyTwoBitsAndMatchTheMethod() {
        #expect(parseError(request(headers: ["CSeq: 4294967295 INVITE"])) == nil)
        #expect(parseError(request(headers: ["CSeq: 4294967296 INVITE"])) == .cseqOutOfRange)
        #expect(parseError(request(headers: ["CSeq: INVITE"])) == .invalidCSeq)
        #expect(parseError(request(headers: ["CSeq: 1INVITE"])) == .invalidCSeq)
        #expect(parseError(request(headers: ["CSeq: 1 BYE"])) == .cseqMethodMismatch)
        #expect(parseError(request(headers: ["CSeq: 1 invite"])) == .cseqMethodMismatch)  // methods are case-sensitive
    }

    @Test func contentLengthRulesBlockSmuggling() {
        #expect(parseError(request(headers: ["Content-Length: 4", "l: 4"], body: "abcd")) == nil)
        #expect(parseError(request(headers: ["Content-Length: 4", "l: 3"], body: "abcd")) == .conflictingContentLength)
        #expect(parseError(request(headers: ["Content-Length: 5"], body: "abcd")) == .contentLengthExceedsMessage)
        #expect(parseError(request(headers: ["Content-Length: +4"], body: "abcd")) == .invalidContentLength)
        #expect(parseError(request(headers: ["Content-Length: 99999999999"], body: "abcd")) == .contentLengthOutOfRange)
    }

    @Test func datagramBodyStopsAtContentLengthAndStreamsRequireIt() throws {
        try withMessage(request(headers: ["Content-Length: 2"], body: "abJUNK")) { message in
            #expect(message.string(message.body) == "ab")
            #expect(message.messageEnd == message.bytes.count - 4)
        }
        try withMessage(request(body: "", omit: ["Content-Length"]) + Array("tail".utf8)) { message in
            #expect(message.string(message.body) == "tail")
        }
        #expect(parseError(request(omit: ["Content-Length"]), framing: .stream) == .missingContentLength)
        #expect(parseError(request(), framing: .stream) == nil)
    }

    @Test(arguments: [("Via", SIPParseError.Code.missingVia), ("From", .missingFrom), ("To", .missingTo),
                      ("Call-ID", .missingCallID), ("CSeq", .missingCSeq)])
    func mandatoryHeadersMustBePresent(_ header: String, _ expected: SIPParseError.Code) {
        #expect(parseError(request(omit: [header])) == expected)
    }

    @Test(arguments: ["From: <sip:x@y>;tag=2", "To: <sip:x@y>", "Call-ID: other", "CSeq: 2 INVITE", "Max-Forwards: 3"])
    func singleValuedHeadersMayNotRepeat(_ extra: String) {
        var bytes = request()
        bytes.removeLast(4)  // before the empty line
        bytes += Array(("\r\n" + extra + "\r\n\r\n").utf8)
        #expect(parseError(bytes) == .duplicateHeader)
    }

    @Test func startLineWhitespaceIsExact() {
        #expect(parseError(request("INVITE  sip:bob@example.com SIP/2.0")) == .startLineWhitespace)
        #expect(parseError(request("INVITE sip:bob@example.com SIP/2.0 ")) == .startLineWhitespace)
        #expect(parseError(request("INVITE sip:bob@example.com\tSIP/2.0")) == .startLineWhitespace)
        #expect(parseError(request("INVITE sip:bob@example.com")) == .invalidStartLine)
        #expect(parseError(request("INVITE <sip:bob@example.com> SIP/2.0")) == .invalidRequestURI)
        #expect(parseError(request("INV(TE sip:bob@example.com SIP/2.0", headers: ["CSeq: 1 INVITE"])) == .invalidMethod)
        #expect(parseError(request("INVITE sip:bob@example.com SIP/2.0")) == nil)
    }

    @Test func extensionMethodsAreTokensComparedExactly() throws {
        let bytes = request("FOO.BAR sip:bob@example.com SIP/2.0", headers: ["CSeq: 5 FOO.BAR"])
        try withMessage(bytes) { message in
            #expect(message.method.known == .extension)
            #expect(message.string(message.method.span) == "FOO.BAR")
        }
        #expect(parseError(request("FOO.BAR sip:bob@example.com SIP/2.0", headers: ["CSeq: 5 FOO.BAZ"]))
            == .cseqMethodMismatch)
    }

    @Test(arguments: [
        ("sip:[2001:db8::1]:5070;transport=tcp", true), ("sips:alice:secret@example.com", true),
        ("sip:%61lice@example.com", true), ("sip:alice@192.0.2.1", true), ("tel:+1-201-555-0123;ext=1", true),
        ("urn:service:sos", true), ("sip:alice@999.0.0.1", false), ("sip:alice@[2001:db8::1", false),
        ("sip:%G1lice@example.com", false), ("sip:alice@example.com:99999", false), ("sip:alice@", false),
        ("sip:al ice@example.com", false), ("sip:alice@exa_mple.com", false), ("sip:alice@example.com;=x", false),
    ])
    func requestURIGrammar(_ uri: String, _ valid: Bool) {
        let error = parseError(request("INVITE \(uri) SIP/2.0"))
        #expect((error == nil) == valid, "\(uri): \(String(describing: error))")
        if !valid { #expect(error == .invalidRequestURI) }
    }

    @Test func uriPartsAndParametersAreFound() throws {
        try withMessage(request("INVITE sips:bob:pw@[2001:db8::1]:5071;lr;transport=tls SIP/2.0")) { message in
            let uri = try #require(message.requestLine?.uri)
            #expect(uri.scheme == .sips)
            #expect(message.string(uri.password!) == "pw")
            #expect(message.string(uri.host) == "[2001:db8::1]")
            #expect(uri.hostKind == .ipv6)
            #expect(uri.port == 5071)
            #expect(uri.hasParameter("lr", in: message.bytes))
            #expect(message.string(uri.parameter("TRANSPORT", in: message.bytes)!.value!) == "tls")
            #expect(!uri.hasParameter("maddr", in: message.bytes))
        }
    }

    @Test func viaParametersAndLimits() throws {
        let via = "Via: SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKabc;received=2001:db8::8;ttl=16;maddr=224.2.0.1"
        try withMessage(request(headers: [via])) { message in
            #expect(message.topVia.hostKind == .ipv6)
            #expect(message.topVia.ttl == 16)
            #expect(message.string(message.topVia.maddr!) == "224.2.0.1")
            #expect(message.topVia.rport == .absent)
        }
        #expect(parseError(request(headers: ["Via: SIP/2.0/UDP h;ttl=256"])) == .invalidVia)
        #expect(parseError(request(headers: ["Via: SIP/2.0/UDP h;rport=70000"])) == .invalidVia)
        #expect(parseError(request(headers: ["Via: SIP/2.0/UDP"])) == .invalidVia)
        #expect(parseError(request(headers: ["Via: SIP/2.0/UDPh"])) == .invalidVia)
        #expect(parseError(request(headers: ["Via: SIP/2.0/UDP h;branch="])) == .invalidVia)
        let threeHops = "Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2, SIP/2.0/UDP c"
        #expect(parseError(request(headers: [threeHops]), limits: ParseLimits(maxViaHops: 3)) == nil)
        #expect(parseError(request(headers: [threeHops]), limits: ParseLimits(maxViaHops: 2)) == .tooManyVias)
    }

    @Test func controlCharactersOnlyAsQuotedPairs() {
        #expect(parseError(request(headers: ["To: \"a\\\u{0}b\" <sip:bob@example.com>"])) == nil)
        #expect(parseError(request(headers: ["To: \"a\u{0}b\" <sip:bob@example.com>"])) == .nulByte)
        #expect(parseError(request(headers: ["Subject: bad\u{0}byte"])) == .nulByte)
        #expect(parseError(request(headers: ["Subject: bell\u{7}"])) == .controlCharacter)
        #expect(parseError(request(headers: ["Subject: tab\tok"])) == nil)
    }

    @Test func displayNamesAndQuoting() {
        #expect(parseError(request(headers: ["From: \"Bell, Alexander\" <sip:a@b.example>;tag=1"]), full: true) == nil)
        #expect(parseError(request(headers: ["From: Bell, Alexander <sip:a@b.example>;tag=1"]), full: true) == .invalidDisplayNameInFrom)
        #expect(parseError(request(headers: ["From: caller<sip:a@b.example>;tag=1"]), full: true) == nil)
        #expect(parseError(request(headers: ["From: <sip:a@b.example>;;tag=1"]), full: true) == .invalidFrom)
        #expect(parseError(request(headers: ["To: <sip:a@ b.example>"]), full: true) == .invalidURI)
        // The forwarding path finds the tags itself, so these are refused even without full validation.
        #expect(parseError(request(headers: ["From: \"Bell <sip:a@b.example>;tag=1"])) == .unterminatedQuotedString)
        #expect(parseError(request(headers: ["From: <sip:a@b.example>;tag"])) == .invalidFrom)
        #expect(parseError(request(headers: ["To: <sip:a@b.example>;tag=;x"])) == .invalidTo)
    }

    /// RFC 3261 §25.1 display-name on the forwarding path, the same on both roads of the parser (one-pass and full
    /// grammar), and never weaker than the full parse of the address.
    @Test(arguments: [
        ("From: Bell, Alexander <sip:a@b.example>;tag=1", SIPParseError.Code.invalidDisplayNameInFrom),
        ("From: alice@example.com <sip:a@b.example>;tag=1", .invalidDisplayNameInFrom),
        ("To: Bob Smith sip:bob@example.com", .invalidDisplayNameInTo),
        ("To: \"Bob\" sip:bob@example.com", .invalidDisplayNameInTo),
        ("To: <sip:bob@example.com> junk", .invalidDisplayNameInTo),
        ("To: <sip:bob@example.com>, <sip:eve@example.com>", .invalidDisplayNameInTo),
        ("Contact: <sip:a@192.0.2.1>, x:y <sip:b@192.0.2.2>", .invalidDisplayNameInContact),
        ("Route: <sip:p@192.0.2.1;lr>, \"p2\" sip:p2@192.0.2.2", .invalidDisplayNameInRoute),
        ("Record-Route: a=b <sip:p@192.0.2.1;lr>", .invalidDisplayNameInRecordRoute),
        ("From: \"Bell, Alexander\" <sip:a@b.example>;tag=1", nil),
        ("From: Bell Alexander <sip:a@b.example> ;tag=1", nil),
        ("To: sip:bob@example.com ; x=y", nil),
        ("Contact: sip:alice.liddell@wonderland.example.com;expires=60", nil),
        ("To: sip:bob.smith.longname@example.com\t; x=y", nil),
        ("Contact: *", nil),
        ("Contact: \"a, b\" <sip:a@192.0.2.1>;expires=60, sip:b@192.0.2.2, Mr.B-2 <sip:c@192.0.2.3>", nil),
        ("Route: <sip:p@192.0.2.1;lr>,<sip:p2@192.0.2.2;lr>", nil),
    ] as [(String, SIPParseError.Code?)])
    func displayNameOutsideTheGrammarIsRefusedNamingTheHeader(_ header: String, _ expected: SIPParseError.Code?) throws {
        let onePass = try SIPParser()
        let fullGrammar = try SIPParser(readsCommonFormsInOnePass: false)
        let bytes = request(headers: [header])
        for parser in [onePass, fullGrammar] {
            let outcome: SIPParseError.Code? = bytes.withPacketBytes { packet in
                do throws(SIPParseError) {
                    let message = try parser.parse(packet)
                    try parser.validateAllHeaders(message)
                    return nil
                } catch {
                    return error.code
                }
            }
            #expect(outcome == expected, "\(header)")
        }
    }

    @Test func tagsAreFoundWithoutParsingTheAddress() throws {
        let headers = ["From: \"A;tag=no\" <sip:a@b.example;tag=uri-param>;x=1 ; TAG = real", "To: sip:b@c.example;tag=t2"]
        try withMessage(request(headers: headers)) { message in
            #expect(message.string(message.fromTag!) == "real")
            #expect(message.string(message.toTag!) == "t2")
        }
    }

    @Test func fullValidationChecksTheOtherHeaders() {
        #expect(parseError(request(headers: ["Contact: <sip:a@b.example>;expires=3600, \"X\" <sip:c@d.example>"]), full: true) == nil)
        #expect(parseError(request(headers: ["Contact: *"]), full: true) == nil)
        #expect(parseError(request(headers: ["Contact: <sip:a@b.example>;expires=4294967296"]), full: true) == .invalidContact)
        #expect(parseError(request(headers: ["Contact: <sip:a@b.example>,,"]), full: true) == .invalidContact)
        #expect(parseError(request(headers: ["Route: <sip:p1.example;lr>, <sip:p2.example;lr>"]), full: true) == nil)
        #expect(parseError(request(headers: ["Route: sip:p1.example"]), full: true) == .invalidRoute)
        #expect(parseError(request(headers: ["Record-Route: <sip:p1.example;lr"]), full: true) == .invalidRecordRoute)
        #expect(parseError(request(headers: ["Date: Sat, 13 Nov 2010 23:29:00 GMT"]), full: true) == nil)
        #expect(parseError(request(headers: ["Date: Sat, 13 Nov 2010 23:29:00 PST"]), full: true) == .invalidDate)
        #expect(parseError(request(headers: ["Expires: 3600"]), full: true) == nil)
        #expect(parseError(request(headers: ["Expires: soon"]), full: true) == .invalidExpires)
        #expect(parseError(request(headers: ["Content-Type: application/sdp;charset=utf-8"]), full: true) == nil)
        #expect(parseError(request(headers: ["Content-Type: application"]), full: true) == .invalidHeaderValue)
        #expect(parseError(request(headers: ["Supported: 100rel, timer"]), full: true) == nil)
        #expect(parseError(request(headers: ["Supported: 100rel timer"]), full: true) == .invalidHeaderValue)
        // The forwarding path does not pay for these checks.
        #expect(parseError(request(headers: ["Expires: soon"]), full: false) == nil)
    }

    @Test func errorsCompareByCodeAndExplainWithoutMessageBytes() {
        #expect(SIPParseError(.invalidVia, at: 3) == SIPParseError(.invalidVia, at: 99))
        for code in SIPParseError.Code.allCases {
            #expect(!code.explanation.isEmpty)
            #expect(code.explanation.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F })
        }
    }

    @Test func aMessageMayNotBeReadAfterItsParserMovesOn() async {
        await #expect(processExitsWith: .failure) {
            let parser = try SIPParser()
            let first = request()
            let second = request(headers: ["Subject: second"])
            try first.withPacketBytes { a in
                let message = try parser.parse(a)
                try second.withPacketBytes { b in _ = try parser.parse(b) }
                _ = message.header(at: 0)  // traps: the table now describes the second message
            }
        }
    }
}
