import Foundation
import SIPBytes
import SIPParsing
import SIPProxyCore
import Testing

private let key = Array("0123456789abcdef0123456789abcdef".utf8)
private let internalPort: UInt16 = 41_000
private let tcpPhone = Flow(transport: .tcp, worker: 1, connection: 0x0003_0007,
                            address: EndpointAddress.parse("192.0.2.10", port: 40_000)!)

/// A fresh codec per use: codecs hold a MAC context and are not shared between (concurrently running) tests.
private func token(_ flow: Flow, codec: FlowTokenCodec = FlowTokenCodec(key: key)) -> String {
    var out: [UInt8] = []
    codec.append(flow, to: &out)
    return String(decoding: out, as: UTF8.self)
}

private func decode(_ text: String, codec: FlowTokenCodec = FlowTokenCodec(key: key)) -> Flow? {
    Array(text.utf8).withPacketBytes { codec.decode($0, $0.all) }
}

/// A worker's proxy in front of `core`, with its upstream-facing port at `internalPort`.
private func edgeProxy() -> StatelessProxy {
    StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: [core], flowKey: key, worker: 1,
                                                     internalPort: internalPort))
}

private func process(_ text: [String], from source: Flow, proxy: StatelessProxy = edgeProxy(),
                     body: String = "") throws -> (ForwardDecision, [String]) {
    let parser = try SIPParser()
    return try lines(text, body: body).withPacketBytes { packet in
        let message = try parser.parse(packet)
        let decision = proxy.process(message, from: source)
        let output = String(decoding: proxy.output.bytes, as: UTF8.self)
        if case .drop = decision {} else { #expect(reparses(output), "output must be a valid SIP message") }
        return (decision, output.components(separatedBy: "\r\n"))
    }
}

private func parameter(_ name: String, in line: String) -> String? {
    guard let range = line.range(of: ";\(name)=") else { return nil }
    return String(line[range.upperBound...].prefix { $0 != ";" && $0 != ">" && $0 != "," })
}

@Suite struct FlowTokenTests {
    @Test func oneCodecSignsAndVerifiesManyTokensInARow() {
        // The MAC context and scratch buffers are reused from token to token: nothing may leak between them.
        let codec = FlowTokenCodec(key: key)
        var tokens: [(Flow, String)] = []
        for index in 0..<200 {
            let flow = Flow(transport: index % 2 == 0 ? .tcp : .udp, worker: UInt8(index % 4), connection: UInt32(index),
                            address: EndpointAddress.parse(index % 3 == 0 ? "2001:db8::\(index)" : "192.0.2.\(index % 250)",
                                                           port: UInt16(5_000 + index))!)
            tokens.append((flow, token(flow, codec: codec)))
        }
        for (flow, text) in tokens.reversed() { #expect(decode(text, codec: codec) == flow) }
        #expect(Set(tokens.map(\.1)).count == 200)
    }

    @Test func tokensRoundTripEveryTransportAndFamily() {
        let flows = [
            tcpPhone,
            Flow.udp(EndpointAddress.parse("203.0.113.9", port: 5060)!),
            Flow(transport: .tls, worker: 255, connection: .max, address: EndpointAddress.parse("2001:db8::1", port: 5061)!),
        ]
        for flow in flows {
            let text = token(flow)
            #expect(text.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, "URI-safe: \(text)")
            #expect(decode(text) == flow)
        }
    }

    @Test func tamperedTruncatedOrForeignTokensAreRefused() {
        let text = token(tcpPhone)
        // Every single-character change is caught by the MAC (or the encoding).
        for index in text.indices {
            var forged = text
            forged.replaceSubrange(index...index, with: text[index] == "A" ? "B" : "A")
            #expect(decode(forged) == nil, "forged at \(text.distance(from: text.startIndex, to: index))")
        }
        #expect(decode(String(text.dropLast())) == nil)
        #expect(decode(String(text.dropLast(4))) == nil)
        #expect(decode("") == nil)
        #expect(decode(text + "AAAA") == nil)
        // A token made under another key (another edge, or a guess) does not verify.
        let other = FlowTokenCodec(key: Array("another key of 32 bytes........".utf8) + [1])
        #expect(decode(token(tcpPhone, codec: other)) == nil)
    }

    @Test func aCodecThatHoldsAFlowsTokenStillRefusesForgeriesForThatFlow() {
        // The codec keeps the tokens it made last, by flow: a forgery that names the same flow must still be
        // checked against the MAC, not waved through because the flow is known.
        let codec = FlowTokenCodec(key: key)
        let text = token(tcpPhone, codec: codec)
        #expect(decode(text, codec: codec) == tcpPhone)
        let raw = Array(text.utf8)
        for index in raw.indices.dropFirst(raw.count - 13) {  // the MAC's characters (and the port's last bits)
            var forged = raw
            forged[index] = raw[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(decode(String(decoding: forged, as: UTF8.self), codec: codec) == nil, "forged at \(index)")
        }
        let other = FlowTokenCodec(key: Array("another key of 32 bytes........".utf8) + [1])
        #expect(decode(token(tcpPhone, codec: other), codec: codec) == nil)
        // The genuine token still verifies after the forgeries, and the codec still makes the same one.
        #expect(decode(text, codec: codec) == tcpPhone)
        #expect(token(tcpPhone, codec: codec) == text)
    }

    @Test func tokensAreTheSameMadeFreshOrReusedAcrossManyMoreFlowsThanTheCacheHolds() {
        // Four times the cache's slots: every slot is replaced several times over. A token is a function of the
        // flow and the key alone, so a codec that made thousands must give the same text as a new one, and read
        // back every token another codec with the same key made (verifying in full where it holds another).
        let codec = FlowTokenCodec(key: key)
        let reader = FlowTokenCodec(key: key)
        let flows = (0..<(4 * FlowTokenCodec.cacheSlots)).map { (index: Int) -> Flow in
            let host: String = index % 5 == 0 ? "2001:db8::\(index)" : "198.51.100.\(index % 200)"
            let transport: TransportKind = index % 3 == 0 ? .tls : .udp
            return Flow(transport: transport, worker: UInt8(index % 2), connection: UInt32(index / 7),
                        address: EndpointAddress.parse(host, port: UInt16(10_000 + index))!)
        }
        for round in 0..<2 {
            for flow in flows {
                let text = token(flow, codec: codec)
                #expect(text == token(flow), "round \(round): \(flow)")
                #expect(decode(text, codec: reader) == flow, "round \(round): \(flow)")
            }
        }
    }

    @Test func registerFromAClientGetsAPathWithItsFlowToken() throws {
        let (decision, out) = try process([
            "REGISTER sip:example.com SIP/2.0", "Via: SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bKreg1;rport",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=r1", "To: <sip:alice@example.com>",
            "Call-ID: reg-1", "CSeq: 1 REGISTER", "Contact: <sip:alice@10.0.0.5:5062;transport=tcp>",
            "Content-Length: 0",
        ], from: tcpPhone)
        #expect(decision == .forward(to: .udp(core)))
        let path = try #require(out.first { $0.hasPrefix("Path: ") })
        #expect(path.hasPrefix("Path: <sip:127.0.0.1:41000;lr;ft="))
        #expect(decode(try #require(parameter("ft", in: path))) == tcpPhone)
        // The core is reached over UDP; the Via tells responses which connection to take.
        let via = try #require(out.first { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK") })
        #expect(decode(try #require(parameter("ft", in: via))) == tcpPhone)
    }

    @Test func aClientCannotHandTheCoreAPathThroughUs() throws {
        // Another user's genuine token, replayed by a client in its own REGISTER: refused, never forwarded.
        let stolen = token(Flow.udp(EndpointAddress.parse("198.51.100.20", port: 5060)!))
        let (decision, out) = try process([
            "REGISTER sip:example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKreg2",
            "Max-Forwards: 70", "From: <sip:mallory@example.com>;tag=m1", "To: <sip:alice@example.com>",
            "Call-ID: reg-2", "CSeq: 1 REGISTER", "Path: <sip:127.0.0.1:41000;lr;ft=\(stolen)>",
            "Contact: <sip:m@192.0.2.10:40000>", "Content-Length: 0",
        ], from: .udp(phone))
        #expect(decision == .reply(status: 403, to: .udp(phone)))
        #expect(out[0] == "SIP/2.0 403 Forbidden (Path through this edge)")
    }

    @Test func aRequestFromTheCoreThroughOurPathGoesDownTheFlow() throws {
        let (decision, out) = try process([
            "INVITE sip:alice@10.0.0.5:5062;transport=tcp SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore1",
            "Route: <sip:127.0.0.1:41000;lr;ft=\(token(tcpPhone))>",
            "Record-Route: <sip:127.0.0.1:5070;lr>",
            "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>",
            "Call-ID: call-9", "CSeq: 1 INVITE", "Content-Length: 0",
        ], from: .udp(core))
        #expect(decision == .forward(to: tcpPhone))
        #expect(!out.contains { $0.hasPrefix("Route:") }, "our Route is consumed")
        #expect(out[1].hasPrefix("Via: SIP/2.0/TCP 127.0.0.1:5060;rport;branch=z9hG4bK"))
        // Record-Route pair: the client's side on top (TCP, where alice sends in-dialog requests), then the core's
        // side with the token (where the core sends them on for alice).
        let recordRoutes = out.filter { $0.hasPrefix("Record-Route:") }
        #expect(recordRoutes.count == 3)
        #expect(recordRoutes[0] == "Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>")
        #expect(recordRoutes[1].hasPrefix("Record-Route: <sip:127.0.0.1:41000;lr;ft="))
        #expect(decode(try #require(parameter("ft", in: recordRoutes[1]))) == tcpPhone)
        #expect(recordRoutes[2] == "Record-Route: <sip:127.0.0.1:5070;lr>")
    }

    @Test func inDialogRequestsPopBothOfOurRoutesAndFollowTheToken() throws {
        let (decision, out) = try process([
            "BYE sip:alice@10.0.0.5:5062;transport=tcp SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore2",
            "Route: <sip:127.0.0.1:41000;lr;ft=\(token(tcpPhone))>, <sip:127.0.0.1:5060;transport=tcp;lr>",
            "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>;tag=a1",
            "Call-ID: call-9", "CSeq: 2 BYE", "Content-Length: 0",
        ], from: .udp(core))
        #expect(decision == .forward(to: tcpPhone))
        #expect(!out.contains { $0.hasPrefix("Route:") })
        #expect(!out.contains { $0.hasPrefix("Record-Route:") })
    }

    @Test func aBadTokenFromTheCoreIs403AndAnAckIsDropped() throws {
        var forged = token(tcpPhone)
        forged.removeLast()
        forged.append(forged.last == "A" ? "B" : "A")
        let invite = [
            "INVITE sip:alice@10.0.0.5:5062 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore3",
            "Route: <sip:127.0.0.1:41000;lr;ft=\(forged)>", "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b1",
            "To: <sip:alice@example.com>", "Call-ID: call-10", "CSeq: 1 INVITE", "Content-Length: 0",
        ]
        let (decision, out) = try process(invite, from: .udp(core))
        #expect(decision == .reply(status: 403, to: .udp(core)))
        #expect(out[0] == "SIP/2.0 403 Forbidden (Invalid flow token)")
        let ack = invite.map { $0.replacingOccurrences(of: "INVITE", with: "ACK") }
        #expect(try process(ack, from: .udp(core)).0 == .drop(.unanswerableAck))
    }

    @Test func aClientsRouteTokenIsNeverActedUpon() throws {
        // A client sending a Route with someone's genuine token still only reaches the core (outbound mode).
        let victim = Flow(transport: .tcp, worker: 1, connection: 9, address: EndpointAddress.parse("198.51.100.20", port: 5060)!)
        let (decision, _) = try process([
            "MESSAGE sip:victim@example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKm1",
            "Route: <sip:127.0.0.1:41000;lr;ft=\(token(victim))>", "Max-Forwards: 70",
            "From: <sip:mallory@example.com>;tag=m2", "To: <sip:victim@example.com>", "Call-ID: m-1",
            "CSeq: 1 MESSAGE", "Content-Length: 0",
        ], from: .udp(phone))
        #expect(decision == .forward(to: .udp(core)))
    }

    /// An edge with a private interface toward the core: Path and the core-facing Record-Route name it, and a
    /// Route naming it on the worker's port is ours (popped), but not on the public port.
    @Test func theInternalHostFacesTheCore() throws {
        let proxy = StatelessProxy(configuration: ProxyConfiguration(
            advertised: edge, upstreams: [core], flowKey: key, worker: 1, internalPort: internalPort,
            internalHost: EndpointAddress.parse("10.1.2.3", port: 0)))
        let (_, register) = try process([
            "REGISTER sip:example.com SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKr9",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=r9", "To: <sip:alice@example.com>",
            "Call-ID: reg-9", "CSeq: 1 REGISTER", "Contact: <sip:alice@192.0.2.10:40000>", "Content-Length: 0",
        ], from: .udp(phone), proxy: proxy)
        #expect(register.contains { $0.hasPrefix("Path: <sip:10.1.2.3:41000;lr;ft=") }, "\(register)")
        let (decision, invite) = try process([
            "INVITE sip:alice@192.0.2.10:40000 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc9",
            "Route: <sip:10.1.2.3:41000;lr;ft=\(token(Flow.udp(phone)))>", "Max-Forwards: 69",
            "From: <sip:bob@example.com>;tag=b9", "To: <sip:alice@example.com>", "Call-ID: c9", "CSeq: 1 INVITE",
            "Content-Length: 0",
        ], from: .udp(core), proxy: proxy)
        #expect(decision == .forward(to: .udp(phone)))
        #expect(!invite.contains { $0.hasPrefix("Route:") })
        #expect(invite.contains { $0.hasPrefix("Record-Route: <sip:10.1.2.3:41000;lr;ft=") })
        // 10.1.2.3 on the public port is not us: that Route stays and is followed.
        let (other, _) = try process([
            "INVITE sip:alice@192.0.2.10:40000 SIP/2.0", "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc10",
            "Route: <sip:10.1.2.3:5060;lr>", "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b10",
            "To: <sip:alice@example.com>", "Call-ID: c10", "CSeq: 1 INVITE", "Content-Length: 0",
        ], from: .udp(core), proxy: proxy)
        #expect(other == .forward(to: .udp(EndpointAddress.parse("10.1.2.3", port: 5060)!)))
    }

    /// A client answering a request of the core can only answer the core: it cannot aim a response at another
    /// client's flow by copying a token it saw, nor reflect one off the edge to an address of its choice.
    @Test func aClientsResponseGoesOnlyToTheCore() throws {
        let victim = token(tcpPhone)
        let response = { (vias: [String]) in
            ["SIP/2.0 200 OK"] + vias + ["From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>;tag=a9",
                                         "Call-ID: call-12", "CSeq: 1 INVITE", "Content-Length: 0"]
        }
        let forged = try process(response(["Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;ft=\(victim)",
                                           "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore"]), from: .udp(phone))
        #expect(forged.0 == .forward(to: .udp(core)), "the token is ignored, the response goes to the core")
        let reflected = try process(response(["Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKy",
                                              "Via: SIP/2.0/UDP 198.51.100.99:5060;branch=z9hG4bKelsewhere"]),
                                    from: .udp(phone))
        #expect(reflected.0 == .drop(.responseNotForUpstream))
        // The same response from the core is routed by the token.
        let genuine = try process(response(["Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx;ft=\(victim)",
                                            "Via: SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bKinv"]), from: .udp(core))
        #expect(genuine.0 == .forward(to: tcpPhone))
    }

    @Test func aStreamClientsInviteIsDoubleRecordRoutedAndItsResponseFindsTheConnection() throws {
        let proxy = edgeProxy()
        let (decision, out) = try process([
            "INVITE sip:bob@example.com SIP/2.0", "Via: SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bKinv1;rport",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>",
            "Call-ID: call-11", "CSeq: 1 INVITE", "Contact: <sip:alice@10.0.0.5:5062;transport=tcp>",
            "Content-Length: 0",
        ], from: tcpPhone, proxy: proxy)
        #expect(decision == .forward(to: .udp(core)))
        let recordRoutes = out.filter { $0.hasPrefix("Record-Route:") }
        // Toward the core on top (the token), then the client's side.
        #expect(recordRoutes.count == 2)
        #expect(recordRoutes[0].hasPrefix("Record-Route: <sip:127.0.0.1:41000;lr;ft="))
        #expect(recordRoutes[1] == "Record-Route: <sip:127.0.0.1:5060;transport=tcp;lr>")

        let ourVia = try #require(out.first { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1:5060") })
        let clientVia = try #require(out.first { $0.contains("z9hG4bKinv1") })
        let (responseDecision, response) = try process([
            "SIP/2.0 180 Ringing", ourVia, clientVia, "From: <sip:alice@example.com>;tag=a1",
            "To: <sip:bob@example.com>;tag=b9", "Call-ID: call-11", "CSeq: 1 INVITE", "Content-Length: 0",
        ], from: .udp(core), proxy: proxy)
        #expect(responseDecision == .forward(to: tcpPhone))
        #expect(response.filter { $0.hasPrefix("Via:") } == [clientVia])
    }
}

/// SIP over WebSocket (RFC 7118 §5, RFC 5626): a browser's flow is a connection like TCP, its Via and Contact hosts
/// are `.invalid` names that lead nowhere, and Record-Route toward it names the WS or WSS listener.
@Suite struct WebSocketFlowTests {
    static let wsPhone = Flow(transport: .ws, worker: 1, connection: 0x0002_0004,
                              address: EndpointAddress.parse("192.0.2.10", port: 51_000)!)
    static let wssPhone = Flow(transport: .wss, worker: 0, connection: 0x0001_0009,
                               address: EndpointAddress.parse("192.0.2.11", port: 52_000)!)

    func webSocketProxy(upstreamTransport: TransportKind = .udp) -> StatelessProxy {
        var configuration = ProxyConfiguration(advertised: edge, upstreams: [core], flowKey: key,
                                               upstreamTransport: upstreamTransport, worker: 1,
                                               internalPort: internalPort)
        configuration.advertisedWSPort = 8_080
        configuration.advertisedWSSPort = 8_443
        return StatelessProxy(configuration: configuration)
    }

    @Test func aRegisterOverWebSocketGetsAPathAndAViaTokenForItsConnection() throws {
        let (decision, out) = try process([
            "REGISTER sip:example.com SIP/2.0", "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws1",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=w1", "To: <sip:alice@example.com>",
            "Call-ID: ws-reg-1", "CSeq: 1 REGISTER", "Contact: <sip:alice@df7jal23ls0d.invalid;transport=ws>",
            "Content-Length: 0",
        ], from: Self.wsPhone, proxy: webSocketProxy())
        #expect(decision == .forward(to: .udp(core)))
        let path = try #require(out.first { $0.hasPrefix("Path: ") })
        #expect(decode(try #require(parameter("ft", in: path))) == Self.wsPhone)
        let via = try #require(out.first { $0.hasPrefix("Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bK") })
        #expect(decode(try #require(parameter("ft", in: via))) == Self.wsPhone)
        // The client's .invalid sent-by says nothing: where it really is goes in received (RFC 3261 §18.2.1).
        #expect(out.contains("Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws1;received=192.0.2.10"))
    }

    @Test(arguments: [(WebSocketFlowTests.wsPhone, "8080;transport=ws"), (WebSocketFlowTests.wssPhone, "8443;transport=wss")])
    func aCallFromTheCoreGoesDownTheWebSocketAndRecordRoutesItsListener(flow: Flow, publicEntry: String) throws {
        let (decision, out) = try process([
            "INVITE sip:alice@df7jal23ls0d.invalid;transport=ws SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcorews",
            "Route: <sip:127.0.0.1:41000;lr;ft=\(token(flow))>", "Record-Route: <sip:127.0.0.1:5070;lr>",
            "Max-Forwards: 69", "From: <sip:bob@example.com>;tag=b1", "To: <sip:alice@example.com>",
            "Call-ID: ws-call-1", "CSeq: 1 INVITE", "Content-Length: 0",
        ], from: .udp(core), proxy: webSocketProxy())
        #expect(decision == .forward(to: flow))
        #expect(out[1].hasPrefix("Via: SIP/2.0/\(flow.transport.viaName) 127.0.0.1:\(publicEntry.prefix(4));rport;branch="))
        let recordRoutes = out.filter { $0.hasPrefix("Record-Route:") }
        #expect(recordRoutes.first == "Record-Route: <sip:127.0.0.1:\(publicEntry);lr>", "\(recordRoutes)")
        #expect(decode(try #require(parameter("ft", in: recordRoutes[1]))) == flow)
    }

    @Test func anInDialogRequestFromTheBrowserPopsTheWebSocketRouteAndReachesTheCore() throws {
        let (decision, out) = try process([
            "BYE sip:bob@127.0.0.1:5070 SIP/2.0", "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws2",
            "Route: <sip:127.0.0.1:8080;transport=ws;lr>, <sip:127.0.0.1:41000;lr;ft=\(token(Self.wsPhone))>",
            "Route: <sip:127.0.0.1:5070;lr>",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a1", "To: <sip:bob@example.com>;tag=b1",
            "Call-ID: ws-call-1", "CSeq: 2 BYE", "Content-Length: 0",
        ], from: Self.wsPhone, proxy: webSocketProxy())
        #expect(decision == .forward(to: .udp(core)))
        #expect(out.filter { $0.hasPrefix("Route:") } == ["Route: <sip:127.0.0.1:5070;lr>"], "both of our entries popped")
    }

    @Test func aRequestFromTheCoreForAnInvalidHostWithoutATokenIsNeverRouted() throws {
        let (decision, out) = try process([
            "INVITE sip:alice@df7jal23ls0d.invalid;transport=ws SIP/2.0",
            "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKcore-invalid", "Max-Forwards: 69",
            "From: <sip:bob@example.com>;tag=b2", "To: <sip:alice@example.com>", "Call-ID: ws-call-2",
            "CSeq: 1 INVITE", "Content-Length: 0",
        ], from: .udp(core), proxy: webSocketProxy())
        #expect(decision == .reply(status: 502, to: .udp(core)))
        #expect(out[0].hasPrefix("SIP/2.0 502"))
    }

    /// RFC 3261 §18.3: a datagram or WebSocket message may leave Content-Length out; on a TCP stream it is what
    /// frames the message, so one is added when such a message goes onto TCP/TLS (and only then).
    @Test func contentLengthIsAddedWhereAStreamNeedsIt() throws {
        let options = [
            "OPTIONS sip:core@127.0.0.1 SIP/2.0", "Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws3",
            "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=a3", "To: <sip:core@127.0.0.1>",
            "Call-ID: ws-options-3", "CSeq: 1 OPTIONS",
        ]
        let toTCP = try process(options, from: Self.wsPhone, proxy: webSocketProxy(upstreamTransport: .tcp)).1
        #expect(toTCP.filter { $0.hasPrefix("Content-Length:") } == ["Content-Length: 0"], "\(toTCP)")
        let toUDP = try process(options, from: Self.wsPhone, proxy: webSocketProxy()).1
        #expect(!toUDP.contains { $0.hasPrefix("Content-Length:") })
        let withBody = try process(options + ["Content-Type: text/plain"], from: .udp(phone),
                                   proxy: webSocketProxy(upstreamTransport: .tcp), body: "hello")
        #expect(withBody.1.contains("Content-Length: 5"), "\(withBody.1)")
        // A response from the core without one, on its way down a TCP client's connection.
        let response = try process([
            "SIP/2.0 200 OK", "Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKx;ft=\(token(tcpPhone))",
            "Via: SIP/2.0/TCP 10.0.0.5:5062;branch=z9hG4bKclient;received=192.0.2.10",
            "From: <sip:alice@example.com>;tag=a4", "To: <sip:core@127.0.0.1>;tag=c4", "Call-ID: tcp-4",
            "CSeq: 1 OPTIONS",
        ], from: .udp(core), proxy: webSocketProxy())
        #expect(response.0 == .forward(to: tcpPhone))
        #expect(response.1.contains("Content-Length: 0"), "\(response.1)")
        #expect(!response.1.contains { $0.contains("127.0.0.1:5060;rport") }, "our Via popped")
    }
}
