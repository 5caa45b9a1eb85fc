import SIPBytes
import SIPParsing
import SIPProxyCore
import Testing

/// RFC 3261 §16.3 steps 2 to 5 (``StatelessProxy/preflight(_:from:)``), what only unit tests reach: the core's side,
/// ACKs, and a reply that cannot be built.
@Suite struct PreflightTests {
    private func request(_ method: String = "OPTIONS", uri: String = "sip:bob@example.com", extra: [String] = [],
                         from: String = "From: <sip:alice@example.com>;tag=a1") -> [UInt8] {
        lines(["\(method) \(uri) SIP/2.0", "Via: SIP/2.0/UDP 10.0.0.5:5062;branch=z9hG4bKpre1;rport",
               "Max-Forwards: 70", from, "To: <sip:bob@example.com>", "Call-ID: pre-1", "CSeq: 1 \(method)"]
              + extra + ["Content-Length: 0"])
    }

    @Test func theCoreSendingATelURIWithoutAFlowTokenGets416TheEdgeCannotRouteIt() throws {
        let (decision, output) = try run(request(uri: "tel:+15551234567"), from: core)
        #expect(decision == .reply(status: 416, to: .udp(core)))
        #expect(output.hasPrefix("SIP/2.0 416 Unsupported URI Scheme\r\n"))
        let (fromClient, _) = try run(request(uri: "tel:+15551234567"), from: phone)
        #expect(fromClient == .forward(to: .udp(core)))
    }

    @Test func anAckIsNeverAnsweredEvenWhenItWouldBeRefused() throws {
        for bytes in [request("ACK", uri: "im:bob@example.com"), request("ACK", extra: ["Proxy-Require: foo"])] {
            let (decision, _) = try run(bytes, from: phone)
            #expect(decision == .drop(.unanswerableAck))
        }
    }

    @Test func aPassthroughTagIsComparedWithoutCaseAndOnlyTheOthersAreNamed() throws {
        var configuration = ProxyConfiguration(advertised: edge, upstreams: [core], flowKey: testFlowKey)
        configuration.proxyRequirePassthrough = ["sec-agree"]
        let proxy = StatelessProxy(configuration: configuration)
        let parser = try SIPParser()
        let decision = try request(extra: ["Proxy-Require: Sec-Agree,x-one", "Proxy-Require: x-two"]).withPacketBytes {
            proxy.preflight(try parser.parse($0), from: .udp(phone))
        }
        #expect(decision == .reply(status: 420, to: .udp(phone)))
        #expect(String(decoding: proxy.output.bytes, as: UTF8.self).contains("\r\nUnsupported: x-one, x-two\r\n"))
    }

    @Test func aReplyThatCannotBeBuiltSafelyLeavesNothingToSendNotThePreviousMessage() throws {
        let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: [core],
                                                                     flowKey: testFlowKey))
        let parser = try SIPParser()
        _ = try invite.withPacketBytes { proxy.process(try parser.parse($0), source: phone) }
        #expect(proxy.output.count > 0)
        // A control character escaped inside the quoted display name (a quoted-pair): legal in the grammar, never
        // copied into a reply.
        let hostile = request(from: "From: \"a\\\u{01}b\" <sip:alice@example.com>;tag=a1")
        try hostile.withPacketBytes { proxy.buildReply(to: try parser.parse($0), status: 400, reason: "Bad Request") }
        #expect(proxy.output.count == 0)
    }
}
