import SIPTransactions
import Testing

/// What the edge forwarded: its Via first, the client's after it, a Route, compact and folded headers.
private let forwarded = Array(("INVITE sip:bob@example.com;transport=udp SIP/2.0\r\n"
    + "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK00112233445566ff\r\n"
    + "v: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKphone;received=192.0.2.10;rport=40000\r\n"
    + "Route: <sip:core.example.com;lr>\r\n"
    + "Max-Forwards: 69\r\n"
    + "f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
    + "To: <sip:bob@example.com>\r\n"
    + "i: call-77\r\n"
    + "CSeq:  4711\r\n INVITE\r\n"
    + "Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n").utf8)

private func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

@Suite struct ForwardedRequestTests {
    @Test func theBranchIsFoundInTheEdgesViaAndRewrittenInPlace() throws {
        var request = forwarded
        let offset = try #require(ForwardedRequest.branchDigitsOffset(in: request))
        #expect(ForwardedRequest.branch(at: offset, in: request) == 0x0011_2233_4455_66FF)
        ForwardedRequest.writeHex(0xDEAD_BEEF_0000_0001, at: offset, in: &request)
        #expect(text(request).contains(";branch=z9hG4bKdeadbeef00000001\r\nv: "))
        #expect(request.count == forwarded.count)
    }

    @Test func aBranchInTheRequestURIIsNotMistakenForTheEdgesOwn() {
        let request = Array("OPTIONS sip:x;branch=z9hG4bK0000000000000000 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=abc\r\n\r\n".utf8)
        #expect(ForwardedRequest.branchDigitsOffset(in: request) == nil)
    }

    @Test func theAckOfANon2xxCarriesTheResponsesToTagTheEdgesViaAloneAndTheRoute() throws {
        var ack: [UInt8] = []
        let toLine = Array("To: <sip:bob@example.com>;tag=busy\r\n".utf8)
        #expect(ForwardedRequest.buildHopRequest(.ack, of: forwarded, responseTo: toLine, into: &ack))
        #expect(text(ack) == "ACK sip:bob@example.com;transport=udp SIP/2.0\r\n"
            + "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK00112233445566ff\r\n"
            + "Route: <sip:core.example.com;lr>\r\n"
            + "f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
            + "i: call-77\r\n"
            + "CSeq: 4711 ACK\r\n"
            + "To: <sip:bob@example.com>;tag=busy\r\n"
            + "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
    }

    @Test func theCancelKeepsTheRequestsOwnTo() throws {
        var cancel: [UInt8] = []
        #expect(ForwardedRequest.buildHopRequest(.cancel, of: forwarded, responseTo: nil, into: &cancel))
        #expect(text(cancel).hasPrefix("CANCEL sip:bob@example.com;transport=udp SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;"))
        #expect(text(cancel).contains("\r\nTo: <sip:bob@example.com>\r\n"))
        #expect(text(cancel).contains("\r\nCSeq: 4711 CANCEL\r\n"))
        #expect(!text(cancel).contains("v: SIP/2.0/UDP 192.0.2.10"))
    }

    @Test func theEdgesOwnResponseGoesToTheClientsViasWithATagAddedOnce() throws {
        var response: [UInt8] = []
        #expect(ForwardedRequest.buildResponse(status: 408, reason: "Request Timeout", tag: 0xAB, of: forwarded,
                                               into: &response))
        #expect(text(response) == "SIP/2.0 408 Request Timeout\r\n"
            + "v: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKphone;received=192.0.2.10;rport=40000\r\n"
            + "f: \"Alice\" <sip:alice@example.com>;tag=a1\r\n"
            + "To: <sip:bob@example.com>;tag=00000000000000ab\r\n"
            + "i: call-77\r\n"
            + "CSeq:  4711\r\n INVITE\r\n"
            + "Server: sip-edge\r\nContent-Length: 0\r\n\r\n")
        let tagged = Array(text(forwarded).replacingTo("To: <sip:bob@example.com>;tag=b2").utf8)
        #expect(ForwardedRequest.buildResponse(status: 500, reason: "Server Internal Error", tag: 1, of: tagged,
                                               into: &response))
        #expect(text(response).contains("\r\nTo: <sip:bob@example.com>;tag=b2\r\n"))
    }

    @Test func aRequestMissingALineBuildsNothing() {
        var out: [UInt8] = []
        let noTo = Array(text(forwarded).replacingTo(nil).utf8)
        #expect(!ForwardedRequest.buildHopRequest(.cancel, of: noTo, responseTo: nil, into: &out))
        #expect(!ForwardedRequest.buildResponse(status: 408, reason: "Request Timeout", tag: 1, of: noTo, into: &out))
    }
}

private extension String {
    /// Replaces the To line (nil: removes the To line).
    func replacingTo(_ line: String?) -> String {
        split(separator: "\r\n", omittingEmptySubsequences: false)
            .compactMap { $0.hasPrefix("To:") ? line.map { Substring($0) } : $0 }
            .joined(separator: "\r\n")
    }
}
