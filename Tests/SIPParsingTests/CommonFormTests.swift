import Foundation
import SIPBytes
import SIPTestSupport
@testable import SIPParsing
import Testing

/// The parser reads the common shapes of the start line (Request-URI included), the top Via and CSeq in one pass and
/// leaves every other shape to the full grammar. Both roads must end in the same place: the same start line, top
/// hop, hop count and CSeq, or the same error at the same offset. (The fuzzer checks the same on arbitrary bytes.)
@Suite struct CommonFormTests {
    enum Verdict: Equatable {
        case parsed(StartLine, ViaHop, hops: Int, CSeq, maxForwards: UInt8?, contentLength: UInt32?,
                    fromTag: ByteSpan?, toTag: ByteSpan?)
        case failed(SIPParseError)
    }

    static func verdict(_ bytes: [UInt8], onePass: Bool) throws -> Verdict {
        let parser = try SIPParser(readsCommonFormsInOnePass: onePass)
        return bytes.withPacketBytes { packet -> Verdict in
            do throws(SIPParseError) {
                let message = try parser.parse(packet)
                return .parsed(message.startLine, message.topVia, hops: message.viaHopCount, message.cseq,
                               maxForwards: message.maxForwards, contentLength: message.contentLength,
                               fromTag: message.fromTag, toTag: message.toTag)
            } catch {
                return .failed(error)
            }
        }
    }

    static let startLines = [
        "INVITE sip:bob@example.com SIP/2.0", "INVITE sip:bob@example.com sip/2.0", "INVITE sip:bob@example.com SIP/2.1",
        "INVITE sip:bob@example.com SIP/02.0", "INVITE  sip:bob@example.com SIP/2.0", "INVITE sip:bob@example.com  SIP/2.0",
        "INVITE sip:bob@example.com SIP/2.0 ", "INVITE\tsip:bob@example.com SIP/2.0", "INVITE sip:bob@exa\tmple.com SIP/2.0",
        "INVITE sip:bob@example.com?Subject=x SIP/2.0", "INVITE sip:[2001:db8::1]:5060;transport=tcp SIP/2.0",
        "INVITE sips:bob@192.0.2.1:5061 SIP/2.0", "INVITE tel:+1-201-555-0123 SIP/2.0", "INVITE mailto:bob@example.com SIP/2.0",
        "INVITE sip:bob@256.0.0.1 SIP/2.0", "INVITE sip:bob@example.com;lr;maddr=192.0.2.1 SIP/2.0", "INVITE SIP/2.0",
        "INVITE sip:%62ob@example.com SIP/2.0", "INVITE sip:%6@example.com SIP/2.0", "NEWMETHOD sip:bob@example.com SIP/2.0",
        "INV@TE sip:bob@example.com SIP/2.0", "INVITE sip:bob@example.com:99999 SIP/2.0", "INVITE sip: SIP/2.0",
        "INVITE sip:bob@" + String(repeating: "a", count: 2_100) + ".com SIP/2.0",
        // Request-URI shapes around the one-pass URI reading.
        "INVITE sip:bob:secret@example.com SIP/2.0", "INVITE sip:example.com SIP/2.0", "INVITE sip:@example.com SIP/2.0",
        "INVITE SIP:Bob@Example.COM:5060;transport=udp SIP/2.0", "INVITE sip:bob@example.com:005060 SIP/2.0",
        "INVITE sip:bob@example.com:0 SIP/2.0", "INVITE sip:bob@example.com: SIP/2.0", "INVITE sip:bob@example.com; SIP/2.0",
        "INVITE sip:bob@example.com;;lr SIP/2.0", "INVITE sip:bob@example.com;lr= SIP/2.0", "INVITE sip:a@b@c SIP/2.0",
        "INVITE sips:example.com:5061;transport=tls SIP/2.0", "INVITE sip:+1201;user=phone@example.com SIP/2.0",
        "INVITE sip:bob@example..com SIP/2.0", "INVITE sip:bob@1.2.3 SIP/2.0", "INVITE sip:bob@example.com. SIP/2.0",
        "INVITE sipx:bob@example.com SIP/2.0", "INVITE sip:bob@example.com;x=%41 SIP/2.0", "INVITE sip:b%20b@h SIP/2.0",
        "INVITE sip:bob@example.com;transport=tcp?x=y SIP/2.0", "INVITE sip:bob@example.com:5060x SIP/2.0",
        "INVITE sip:bob@.example.com SIP/2.0", "INVITE sip:bob@-example.com SIP/2.0", "INVITE sip:bob@9.example.com SIP/2.0",
        "INVITE sip:bob@example.com;=x SIP/2.0", "INVITE sip:bob@example.com;a=b;c SIP/2.0", "INVITE sip:bob@ex_ample.com SIP/2.0",
        "INVITE sips: SIP/2.0", "INVITE sip:b SIP/2.0",
    ]

    static let cseqs = [
        "314159 INVITE", "1 INVITE", "0 INVITE", "4294967295 INVITE", "4294967296 INVITE", "00000000001 INVITE",
        "12345678901 INVITE", "1  INVITE", "1\tINVITE", "1INVITE", " 1 INVITE", "1 INVITE ", "1 invite", "1 NEWMETHOD",
        "1 INV@TE", "x INVITE", "1 ", "1", "-1 INVITE", "1 INVITE x", "1 SUBSCRIBE",
    ]

    static let responseLines = [
        "SIP/2.0 200 OK", "sip/2.0 180 Ringing", "SIP/2.0 200", "SIP/2.0 200 ", "SIP/2.0 099 Low", "SIP/2.0 700 High",
        "SIP/2.0 20 Short", "SIP/2.0 2000 Long", "SIP/2.0  200 OK", "SIP/2.1 200 OK", "SIP/2.0 200\tOK", "SIP/2.0 2x0 OK",
    ]

    static let vias = [
        "SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776;rport", "sip/2.0/tcp pc33.example.com;BRANCH=z9hG4bK1",
        "SIP / 2.0 / UDP pc33.example.com;branch=z9hG4bK1", "SIP/2.0/UDP  pc33.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP pc33.example.com ;branch=z9hG4bK1", "SIP/2.0/UDP pc33.example.com; branch=z9hG4bK1",
        "SIP/2.0/UDP pc33.example.com;branch = z9hG4bK1", "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.9;rport=5070;ttl=16;maddr=224.2.0.1;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1;rport=;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.1;rport=70000;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1;ttl;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.1;ttl=256;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1;branch=;x", "SIP/2.0/UDP 192.0.2.1;branch", "SIP/2.0/UDP 192.0.2.1;branch=a[b]",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;", "SIP/2.0/UDP 192.0.2.1;;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1;x=\"quoted, value\";branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.1;x=;branch=z9hG4bK1",
        "SIP/2.0/UDP 192.0.2.1:;branch=z9hG4bK1", "SIP/2.0/UDP 192.0.2.1:65536;branch=z9hG4bK1",
        "SIP/2.0/UDP 1.2.3.4.5;branch=z9hG4bK1", "SIP/2.0/UDP -bad.example.com;branch=z9hG4bK1",
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1,SIP/2.0/UDP b.example.com;branch=z9hG4bK2",
        "SIP/2.0/UDP a.example.com;branch=z9hG4bK1 , SIP/2.0/UDP b.example.com", "SIP/2.0/UDP a.example.com,",
        "SIP/2.0/UDP a.example.com,,SIP/2.0/UDP b", "SIP/2.0/UDP a.example.com, \"unterminated",
        "SIP/2.0/UDP a.example.com,<sip:x>", "SIP/2.0/X h", "SIP/2.0/UDP h;br/anch=1", "SIP/2.0/UDP h;branch=1>2",
        // Case, leading zeros, limits, long and repeated names, the shortest forms.
        "SIp/2.0/udp h.example.com:05060;RPORT=005070;TTL=0255;Received=192.0.2.9;MADDR=h2;Branch=z9hG4bK1",
        "SIP/2.0/UDP h:050600;branch=z9hG4bK1", "SIP/2.0/UDP h:65535;rport=65535;ttl=255;branch=z9hG4bK1",
        "SIP/2.0/UDP h;rport=65536", "SIP/2.0/UDP h;rport=5x", "SIP/2.0/UDP h;ttl=", "SIP/2.0/UDP h;maddr=",
        "SIP/2.0/UDP h;received=", "SIP/2.0/UDP h;received=[2001:db8::9];branch=z9hG4bK1",
        "SIP/2.0/UDP h;received=a_b;branch=z9hG4bK1", "SIP/2.0/UDP h;branchxyz=1;branches=2;branch=z9hG4bK1",
        "SIP/2.0/UDP h;ft=;ft=second;branch=z9hG4bK1", "SIP/2.0/UDP h;FT=first;ft=second", "SIP/2.0/UDP h;ft",
        "SIP/2.0/UDP h;branch=z9hG4bK1;branch=z9hG4bK2;rport;rport=1", "SIP/2.0/UDP h;x=[v6]:1;y=a:b",
        "SIP/2.0/UDP h", "SIP/2.0/UD h", "SIP/2.0/UDP h.", "SIP/2.0/UDP 2.0.0.1x", "SIP/2.0 UDP h", "SIP/2.1/UDP h",
        "SIP/2.0/UDP h:", "SIP/2.0/UDP h;", "SIP/2.0/UDP h;=1", "SIP/2.0/UDP h;a=b=c", "SIP/2.0/UDP h\t;branch=1",
    ]

    @Test(arguments: startLines + responseLines)
    func startLineReadsTheSameBothWays(_ line: String) throws {
        let bytes = request(line)
        #expect(try Self.verdict(bytes, onePass: true) == Self.verdict(bytes, onePass: false), "\(line)")
    }

    @Test(arguments: vias)
    func topViaReadsTheSameBothWays(_ via: String) throws {
        for extra in [[], ["Via: SIP/2.0/UDP later.example.com;branch=z9hG4bK9, SIP/2.0/TCP x"]] {
            let bytes = request(headers: ["Via: " + via] + extra)
            #expect(try Self.verdict(bytes, onePass: true) == Self.verdict(bytes, onePass: false), "\(via)")
        }
    }

    enum HopVerdict: Equatable {
        case hop(ViaHop?)
        case failed(SIPParseError)
    }

    /// A response's next hop, read straight after the top hop (``SIPMessage/secondViaHop()``), is the hop that
    /// splitting the Vias into elements and parsing the second finds, or the same error: on the top hop's line (after
    /// a comma, with or without a space), on a line of its own, and after a top hop that is not in the common form.
    @Test(arguments: vias)
    func secondHopReadsTheSameAsTheSplitOne(_ via: String) throws {
        let parser = try SIPParser()
        let commonTop = "SIP/2.0/UDP top.example.com:5060;branch=z9hG4bK0", otherTop = "SIP/2.0/UDP top.example.com ;lr"
        for headers in [["Via: \(commonTop), \(via)"], ["Via: \(commonTop),\(via)"], ["Via: \(commonTop)", "Via: \(via)"],
                        ["Via: \(otherTop), \(via)"], ["Via: \(otherTop)", "Via: \(via)"]] {
            let bytes = request("SIP/2.0 200 OK", headers: headers)
            bytes.withPacketBytes { packet in
                guard let message = try? parser.parse(packet) else { return }
                var direct: HopVerdict, split: HopVerdict
                do throws(SIPParseError) { direct = .hop(try message.secondViaHop()) } catch { direct = .failed(error) }
                do throws(SIPParseError) {
                    split = .hop(try message.element(at: 1, of: .via).map { span throws(SIPParseError) in
                        try ViaHop.parse(packet, span)
                    })
                } catch { split = .failed(error) }
                #expect(direct == split, "\(headers)")
            }
        }
    }

    @Test func aSingleViaHasNoSecondHop() throws {
        let parser = try SIPParser()
        for via in ["SIP/2.0/UDP top.example.com;branch=z9hG4bK0", "SIP/2.0/UDP top.example.com ;branch=z9hG4bK0"] {
            let hop = try request("SIP/2.0 200 OK", headers: ["Via: " + via]).withPacketBytes {
                packet throws(SIPParseError) in try parser.parse(packet).secondViaHop()
            }
            #expect(hop == nil)
        }
    }

    /// Seeded mutations of the corpus hops (bytes replaced, inserted or dropped, from the characters the Via grammar
    /// turns on): whatever the one-pass reading accepts, the full grammar parses to the same hop on the same span, and
    /// the full grammar accepts; the one-pass reading may decline anything.
    @Test(arguments: [1, 2, 3])
    func mutatedHopsTheOnePassReadingTakesParseTheSameInFull(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let alphabet = Array("SIPsip/2.0UDPTCPtls h1.9:;=,-_[]\"\tbranchrportreceivedttlmaddrft05z".utf8)
        var taken = 0
        for _ in 0..<20_000 {
            var hop = Array(Self.vias[Int(random.next() % UInt64(Self.vias.count))].utf8)
            for _ in 0..<(1 + Int(random.next() % 3)) where !hop.isEmpty {
                let at = Int(random.next() % UInt64(hop.count))
                let byte = alphabet[Int(random.next() % UInt64(alphabet.count))]
                switch random.next() % 3 {
                case 0: hop[at] = byte
                case 1: hop.insert(byte, at: at)
                default: hop.remove(at: at)
                }
            }
            let (common, full) = hop.withPacketBytes { packet -> ((hop: ViaHop, end: Int)?, ViaHop?) in
                guard let common = ViaHop.parseCommonForm(packet, packet.all) else { return (nil, nil) }
                return (common, try? ViaHop.parse(packet, ByteSpan(from: 0, to: common.end)))
            }
            guard let common else { continue }
            taken += 1
            #expect(common.hop == full, "\(String(decoding: hop, as: UTF8.self))")
        }
        #expect(taken > 1_000, "the mutations must reach the one-pass reading often enough to compare")
    }

    /// The edge finds the flow token in its own Via of a response as the hop is read: the first `ft` with a value,
    /// either road.
    @Test(arguments: [("SIP/2.0/UDP 192.0.2.1:5060;rport;branch=z9hG4bK1;ft=AbC-_9", "AbC-_9"),
                      ("SIP/2.0/TCP 192.0.2.1;FT=x;branch=z9hG4bK1;ft=y", "x"), ("SIP/2.0/UDP 192.0.2.1;ft;ft=z", "z"),
                      ("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1;fts=1", nil), ("SIP / 2.0 / UDP h ; ft = q", "q")])
    func flowTokenIsReadWithTheHop(_ via: String, _ token: String?) throws {
        let bytes = Array(via.utf8)
        let full = try bytes.withPacketBytes { (packet) throws(SIPParseError) in try ViaHop.parse(packet, packet.all) }
        #expect(full.flowToken.map { String(decoding: bytes[$0.start..<$0.end], as: UTF8.self) } == token, "\(via)")
        if let common = bytes.withPacketBytes({ ViaHop.parseCommonForm($0, $0.all) }) {
            #expect(common.hop == full, "\(via)")
        }
    }

    /// The hops edges and phones send are taken by the one-pass reading, not only agreed with: a common form that
    /// fell through to the full grammar would pass every comparison above and cost twice the time.
    @Test(arguments: ["SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKb4c546533b1c7788",
                      "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-16323-1-0",
                      "SIP/2.0/TLS pc33.example.com;received=192.0.2.9;rport=5070;branch=z9hG4bK1;ft=AbC-_9",
                      "SIP/2.0/UDP 192.0.2.1:5060;received=192.0.2.9;rport=5070;ttl=16;maddr=224.2.0.1;branch=z9hG4bK1",
                      "sip/2.0/ws df7jal23ls0d.invalid;branch=z9hG4bKnashds7;x=[v6]:1"])
    func commonHopsAreReadInOnePass(_ via: String) throws {
        let bytes = Array(via.utf8)
        let full = try bytes.withPacketBytes { (packet) throws(SIPParseError) in try ViaHop.parse(packet, packet.all) }
        let common = bytes.withPacketBytes { ViaHop.parseCommonForm($0, $0.all) }
        #expect(common?.hop == full, "\(via)")
        #expect(common?.end == bytes.count, "\(via)")
    }

    @Test(arguments: cseqs)
    func cseqReadsTheSameBothWays(_ cseq: String) throws {
        let bytes = request(headers: ["CSeq: " + cseq])
        #expect(try Self.verdict(bytes, onePass: true) == Self.verdict(bytes, onePass: false), "\(cseq)")
    }

    static let nameAddresses = [
        "<sip:alice@example.com>;tag=1928301774", "Alice <sip:alice@example.com>;tag=1928301774",
        "Alice Liddell <sip:alice@example.com> ; tag = 88", "<sip:alice@example.com>", "<sip:a@b>;x=1;tag=2;y",
        "<sip:a@b>;TAG=Ab", "<sip:a@b>;tag=", "<sip:a@b>;tag", "<sip:a@b>;tag=a b", "<sip:a@b>;tagx=1",
        "<sip:a@b> x;tag=1", "<sip:a@b>x", "<sip:a@b>;x=<y>;tag=1", "<sip:a@b>;x=\"q;tag=2\";tag=3",
        "\"Alice\" <sip:a@b>;tag=1", "\"Al\\\"ice\" <sip:a@b>;tag=1", "\"open <sip:a@b>;tag=1",
        "sip:alice@example.com;tag=1", "sip:a@b", "Bell, Alexander <sip:a@b>;tag=1", "a@b <sip:a@b>;tag=1",
        "<sip:a@b", "<sip:a@b>>;tag=1", "<<sip:a@b>;tag=1", "<sip:a@b;lr>;tag=1", "<sip:a;tag=9@b>;tag=1",
        "A\r\n B <sip:a@b>;tag=1", "<sip:a@b>\r\n ;tag=1", "", " <sip:a@b>;tag=1 ", "<sip:a@b>;;tag=1",
        "<sip:a@b>;tag=1;tag=2", "<sip:a@b>;\"x\"", "<sip:a@b>;tag=1,<sip:c@d>",
        // Past the first 16-byte block: a quote, a second bracket, a tag the short road does not take.
        "Alice Liddell of Wonderland <sip:alice@example.com>;tag=\"q\"", "<sip:alice@wonderland.example.com>;tag==1",
        "<sip:alice.liddell@wonderland.example.com;user=phone>;tag=@x", "<sip:a@b>;Tag=abc;tag=2",
        "Long Display Name Here <sip:a<b@example.com>;tag=1", "<sip:alice@example.com>;foo=bar;baz=\"<q>\";tag=1",
        "<sip:alice@example.com>;tag=1928301774;x=\"", "0123456789abcde <sip:a@b>;tag=1", "<sip:a@b>;tag= 1",
        "<sip:alice@example.com>;tag=1928301774>", "0123456789abcdef<sip:alice@example.com>;tag=x",
    ]

    @Test(arguments: nameAddresses)
    func fromAndToReadTheSameBothWays(_ value: String) throws {
        for header in ["From", "To"] {
            let bytes = request(headers: ["\(header): \(value)"])
            #expect(try Self.verdict(bytes, onePass: true) == Self.verdict(bytes, onePass: false), "\(header): \(value)")
        }
    }

    static let numbers = [
        "70", "0", "255", "256", "999", "0070", "007", "7a", "-1", "", "4294967295", "4294967296", "99999999999",
        "00000000000000000000001",
    ]

    @Test(arguments: numbers)
    func numberHeadersReadTheSameBothWays(_ number: String) throws {
        for header in ["Max-Forwards", "Content-Length"] {
            let bytes = request(headers: ["\(header): \(number)"])
            #expect(try Self.verdict(bytes, onePass: true) == Self.verdict(bytes, onePass: false), "\(header): \(number)")
        }
    }

    /// The one-pass URI reading returns either nothing or exactly what the full grammar reads.
    @Test(arguments: startLines)
    func requestURIReadsTheSameBothWays(_ line: String) throws {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count >= 3 else { return }
        let uri = Array(parts[1...].dropLast().joined(separator: " ").utf8)
        uri.withPacketBytes { packet in
            if let common = SIPURI.parseCommonForm(packet, packet.all) {
                #expect(common == (try? SIPURI.parse(packet, packet.all)), "\(line)")
            }
        }
    }

    /// A space before the colon (RFC 3261 `HCOLON`) is the scanner's business: it trims it and only flags the line,
    /// so both roads read a spaced header exactly as the same header with that whitespace after the colon instead
    /// (same value offsets), and the edge policy alone decides whether to take it.
    @Test(arguments: [("Via", "Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport"),
                      ("v", "Via", "SIP / 2.0 / UDP 192.0.2.1;branch=z9hG4bK1"), ("CSeq", "CSeq", "314159 INVITE"),
                      ("Max-Forwards", "Max-Forwards", "70"), ("Max-Forwards", "Max-Forwards", "0070"),
                      ("Content-Length", "Content-Length", "0"), ("l", "Content-Length", "0"),
                      ("Call-ID", "Call-ID", "a84b4c76e66710@pc33.example.com"), ("i", "Call-ID", "x@y")])
    func aSpaceBeforeTheColonReadsTheSameBothWaysAndAsWithout(_ name: String, _ full: String, _ value: String) throws {
        for spacing in [" ", "\t", "   "] {
            let spaced = request(headers: ["\(name)\(spacing): \(value)"], omit: [full])
            let after = request(headers: ["\(name):\(spacing) \(value)"], omit: [full])
            let onePass = try Self.verdict(spaced, onePass: true)
            #expect(onePass == (try Self.verdict(spaced, onePass: false)), "\(name)\(spacing): \(value)")
            #expect(onePass == (try Self.verdict(after, onePass: true)), "\(name)\(spacing): \(value)")
            if case .failed(let error) = onePass { Issue.record("\(name)\(spacing): \(value) refused: \(error)") }
        }
    }

    @Test func typicalLinesTakeTheOnePassRoad() throws {
        // Without this, a one-pass reader that refused everything would pass the comparisons above.
        let via = Array("SIP/2.0/UDP pc33.example.com:5060;branch=z9hG4bK776;rport, SIP/2.0/UDP b".utf8)
        let hop = via.withPacketBytes { ViaHop.parseCommonForm($0, $0.all) }
        #expect(hop?.end == via.firstIndex(of: UInt8(ascii: ",")))
        #expect(hop?.hop.port == 5060 && hop?.hop.rport == .requested(nameEnd: hop?.end ?? -1) && hop?.hop.branch != nil)
        for line in ["INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK", "SIP/2.0 180"] {
            let bytes = Array(line.utf8)
            let parsed = try bytes.withPacketBytes { (packet) throws(SIPParseError) in
                try StartLineParser.parseCommonForm(packet, packet.all, maxURILength: 2_048)
            }
            #expect(parsed != nil, "\(line)")
        }
        for uri in ["sip:bob@example.com", "sips:example.com:5061;transport=tls", "sip:+1201;user=phone@192.0.2.1:5060"] {
            let bytes = Array(uri.utf8)
            let common = bytes.withPacketBytes { SIPURI.parseCommonForm($0, $0.all) }
            #expect(common != nil && common == bytes.withPacketBytes { try? SIPURI.parse($0, $0.all) }, "\(uri)")
        }
        let cseq = Array("314159 INVITE".utf8).withPacketBytes { SIPParser.cseqCommonForm($0, $0.all) }
        #expect(cseq?.number == 314_159 && cseq?.method.known == .invite)
        for (value, tag) in [("sipp <sip:sipp@127.0.0.1:5061>;tag=1", "1"), ("<sip:a@b>", nil), ("A B <sip:a@b>;x;tag=z", "z")] {
            let bytes = Array(value.utf8)
            let found = bytes.withPacketBytes { NameAddress.commonFormTag($0, $0.all) }
            #expect(found != nil, "\(value)")
            let text = found.flatMap { $0 }.map { String(decoding: bytes[$0.start..<$0.end], as: UTF8.self) }
            #expect(text == tag, "\(value)")
        }
        let maxForwards = Array("70".utf8).withPacketBytes { SIPParser.plainNumber($0, $0.all, maxDigits: 3, limit: 255) }
        #expect(maxForwards == 70)
    }
}
