import Foundation
import SIPBytes
import SIPTestSupport
import SIPUring
import Testing

/// RFC 3261 §16.3 through the real binary, over UDP and TCP: the Request-URI scheme (416), Proxy-Require (420 with
/// Unsupported, a configured tag passed on, Require untouched), the order of the checks (483 before the edge
/// policy), identity fields with control characters refused.
@Suite(.serialized) struct RequestValidationTests {
    /// One edge (with `sec-agree` passed on for the core) in front of a fake core, for every case.
    final class Rig {
        let core: FakeCore
        let edge: Process
        let port: Int
        let udp: UDPSocket

        init() throws {
            port = ProcessHarness.portBase(.validation)
            core = try FakeCore()
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("validation-\(getpid()).yaml")
            try """
                listen: udp:127.0.0.1:\(port)
                upstreams: [sip:\(core.address)]
                workers: 1
                proxy:
                  proxy_require_passthrough: [sec-agree]
                """.write(to: config, atomically: true, encoding: .utf8)
            edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path, "--admin", "off"],
                                            log: "validation-edge.log")
            udp = try UDPSocket(binding: EndpointAddress.parse("127.0.0.5", port: 0)!, reusePort: false)
            usleep(500_000)
        }

        deinit { ProcessHarness.stop(edge) }

        /// A request from this rig's client over `transport`; `requestURI`, extra headers and Max-Forwards vary.
        func request(_ transport: String, callID: String, uri: String = "sip:bob@example.com", maxForwards: Int = 70,
                     extra: String = "", branch: String? = nil, fromTag: String = "a1",
                     from: String = "<sip:alice@example.com>") -> String {
            let sentBy = transport == "UDP" ? "127.0.0.5:\(udp.localAddress.port)" : "127.0.0.1:9"
            return "OPTIONS \(uri) SIP/2.0\r\nVia: SIP/2.0/\(transport) \(sentBy);branch=\(branch ?? "z9hG4bK\(callID)");rport\r\n"
                + "Max-Forwards: \(maxForwards)\r\nFrom: \(from);tag=\(fromTag)\r\n"
                + "To: <sip:bob@example.com>\r\nCall-ID: \(callID)\r\nCSeq: 1 OPTIONS\r\n\(extra)Content-Length: 0\r\n\r\n"
        }

        /// Sends `build(transport)` over UDP and over a TCP connection; returns what came back on each (empty: no
        /// answer within the wait).
        func exchange(_ build: (String) -> String) -> (udp: String, tcp: String) {
            udp.send(Array(build("UDP").utf8), to: EndpointAddress.parse("127.0.0.1", port: UInt16(port))!)
            var udpAnswer = ""
            let batch = DatagramBatch(capacity: 8, bufferSize: 4_096)
            let deadline = Date().addingTimeInterval(2)
            while udpAnswer.isEmpty, Date() < deadline {
                if batch.receive(from: udp) > 0 {
                    batch.withDatagram(0) { bytes, _ in udpAnswer = bytes.string(bytes.all) }
                } else {
                    usleep(20_000)
                }
            }
            guard let stream = TestStreamClient(port: port) else { return (udpAnswer, "") }
            stream.send(build("TCP"))
            let tcpAnswer = stream.receive(timeout: 2) { $0.hasSuffix("\r\n\r\n") }
            return (udpAnswer, tcpAnswer)
        }
    }

    let rig: Rig

    init() throws {
        rig = try Rig()
    }

    @Test func aSchemeTheCoreCannotRouteIsRefused416WhileTelIsForwarded() throws {
        let refused = rig.exchange { rig.request($0, callID: "im-\($0)", uri: "im:bob@example.com") }
        #expect(refused.udp.hasPrefix("SIP/2.0 416 Unsupported URI Scheme\r\n"), "\(refused.udp)")
        #expect(refused.tcp.hasPrefix("SIP/2.0 416 Unsupported URI Scheme\r\n"), "\(refused.tcp)")
        let tel = rig.exchange { rig.request($0, callID: "tel-\($0)", uri: "tel:+15551234567") }
        #expect(tel.udp.isEmpty && tel.tcp.isEmpty, "no local answer for a tel: URI: \(tel)")
        let forwarded = rig.core.take()
        #expect(forwarded.filter { $0.hasPrefix("OPTIONS tel:+15551234567 SIP/2.0\r\n") }.count == 2, "\(forwarded)")
        #expect(!forwarded.contains { $0.contains("Call-ID: im-") })
    }

    @Test func unknownProxyRequireTagsGet420NamingExactlyThemWhilePassedTagsAndRequireGoThrough() throws {
        let refused = rig.exchange {
            rig.request($0, callID: "pr-\($0)", extra: "Proxy-Require: sec-agree, foo\r\nProxy-Require: Bar\r\n")
        }
        for answer in [refused.udp, refused.tcp] {
            #expect(answer.hasPrefix("SIP/2.0 420 Bad Extension\r\n"), "\(answer)")
            #expect(answer.contains("\r\nUnsupported: foo, Bar\r\n"), "\(answer)")
        }
        let passed = rig.exchange {
            rig.request($0, callID: "ok-\($0)", extra: "Proxy-Require: SEC-AGREE\r\nRequire: 100rel, foo\r\n")
        }
        #expect(passed.udp.isEmpty && passed.tcp.isEmpty, "\(passed)")
        let forwarded = rig.core.take().filter { $0.contains("Call-ID: ok-") }
        #expect(forwarded.count == 2)
        #expect(forwarded.allSatisfy { $0.contains("\r\nRequire: 100rel, foo\r\n") && $0.contains("Proxy-Require: SEC-AGREE") })
        let malformed = rig.exchange { rig.request($0, callID: "bad-\($0)", extra: "Proxy-Require: foo@bar\r\n") }
        #expect(malformed.udp.hasPrefix("SIP/2.0 400 Bad Request"), "\(malformed.udp)")
        #expect(!malformed.udp.contains("foo@bar\r\n"), "the bad tag is not echoed")
    }

    @Test func maxForwardsZeroGets483WhateverElseTheRequestCarries() throws {
        let answer = rig.exchange {
            rig.request($0, callID: "mf-\($0)", maxForwards: 0, extra: "Subject: x' or '1'='1\r\nProxy-Require: foo\r\n")
        }
        #expect(answer.udp.hasPrefix("SIP/2.0 483 Too Many Hops\r\n"), "\(answer.udp)")
        #expect(answer.tcp.hasPrefix("SIP/2.0 483 Too Many Hops\r\n"), "\(answer.tcp)")
        // The same request with Max-Forwards left is the policy's: 403 for the injection pattern.
        let policy = rig.exchange { rig.request($0, callID: "sq-\($0)", extra: "Subject: x' or '1'='1\r\n") }
        #expect(policy.udp.hasPrefix("SIP/2.0 403 Forbidden\r\n"), "\(policy.udp)")
    }

    /// A control character in the Call-ID, the Via branch or a tag fails the parse before anything hashes them.
    /// No answer can be addressed without echoing those very lines (a response must carry them for the client
    /// to match it), so the message is dropped, audited and counted, and never reaches the core.
    @Test func controlCharactersInIdentityFieldsAreDroppedBeforeAnyUseAndNeverEchoed() throws {
        let cases: [(String, (String) -> String)] = [
            ("call-id", { rig.request($0, callID: "cid\u{01}x-\($0)") }),
            ("branch", { rig.request($0, callID: "br-\($0)", branch: "z9hG4bK\u{02}b") }),
            ("tag", { rig.request($0, callID: "tag-\($0)", fromTag: "t\u{7F}") }),
        ]
        for (name, build) in cases {
            let answer = rig.exchange(build)
            #expect(answer.udp.isEmpty && answer.tcp.isEmpty, "\(name): \(answer)")
        }
        #expect(rig.core.take().isEmpty)
        let log = ProcessHarness.logContents("validation-edge.log")
        let drops = log.components(separatedBy: "\"rule\":\"malformed\",\"action\":\"drop\"").count - 1
        #expect(drops == 6, "\(drops) parse-error drops audited")
        #expect(log.contains("parse error: controlCharacter"))
        // The well-formed twin of each is forwarded, so the drops above are the control characters' doing.
        _ = rig.exchange { rig.request($0, callID: "clean-\($0)") }
        #expect(rig.core.take().filter { $0.contains("Call-ID: clean-") }.count == 2)
    }

    /// RFC 3261 §25.1: an unquoted display name is tokens and LWS only. One outside the grammar, on any of the
    /// address headers the edge reads, gets 400 naming the header; the same names quoted, or as tokens, go through.
    @Test func displayNamesOutsideTheGrammarGet400NamingTheHeaderWhileQuotedOnesAreForwarded() throws {
        let cases: [(header: String, refused: (String) -> String, named: String)] = [
            ("From", { rig.request($0, callID: "dn-from-\($0)", from: "Bell, Alexander <sip:a@example.com>") },
             "display name in From"),
            ("Contact", { rig.request($0, callID: "dn-contact-\($0)", extra: "Contact: bob@host <sip:b@192.0.2.9>\r\n") },
             "display name in Contact"),
            ("Route", { rig.request($0, callID: "dn-route-\($0)", extra: "Route: <sip:x@192.0.2.1;lr>, core: x <sip:y@192.0.2.2;lr>\r\n") },
             "display name in Route"),
            ("Record-Route", { rig.request($0, callID: "dn-rr-\($0)", extra: "Record-Route: Proxy sip:p@192.0.2.3;lr\r\n") },
             "display name in Record-Route"),
        ]
        for (header, build, named) in cases {
            let answer = rig.exchange(build)
            for reply in [answer.udp, answer.tcp] {
                #expect(reply.hasPrefix("SIP/2.0 400 Bad Request (\(named)"), "\(header): \(reply)")
            }
        }
        #expect(rig.core.take().filter { $0.contains("Call-ID: dn-") }.isEmpty)
        let accepted = rig.exchange {
            rig.request($0, callID: "dn-ok-\($0)", extra: "Contact: \"bob@host, the 2nd\" <sip:b@192.0.2.9>\r\n"
                        + "Record-Route: Edge Proxy <sip:p@192.0.2.3;lr>\r\n",
                        from: "\"Bell, Alexander\" <sip:a@example.com>")
        }
        #expect(accepted.udp.isEmpty && accepted.tcp.isEmpty, "\(accepted)")
        #expect(rig.core.take().filter { $0.contains("Call-ID: dn-ok-") }.count == 2)
    }
}
