import Benchmark
import SIPBytes
import SIPParsing
import SIPProxyCore

// The stateless proxy's own work per forwarded message, in process: parse, decide, edit, build the output (no
// sockets, no wake-ups). The user-time half of issue #17's gap to the relay, timed on the CPU rather than counted by
// callgrind. Quote figures as a ratio to the reference byte scan from the same run.

private let edge = EndpointAddress.parse("127.0.0.1", port: 5060)!
private let core = EndpointAddress.parse("127.0.0.1", port: 5070)!
private let phone = EndpointAddress.parse("192.0.2.10", port: 40_000)!

private func message(_ lines: [String]) -> [UInt8] {
    Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
}

/// What SIPp's uac sends, as a phone would: the request the edge forwards to the core.
private let invite = message([
    "INVITE sip:service@127.0.0.1:5060 SIP/2.0",
    "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK-21630-1-0",
    "From: sipp <sip:sipp@192.0.2.10:40000>;tag=21630SIPpTag001",
    "To: service <sip:service@127.0.0.1:5060>",
    "Call-ID: 1-21630@192.0.2.10",
    "CSeq: 1 INVITE",
    "Contact: sip:sipp@192.0.2.10:40000",
    "Max-Forwards: 70",
    "Subject: Performance Test",
    "Content-Length: 0",
])

/// The core's 200 to it, carrying the edge's Via on top: the response the edge forwards back to the phone.
private let okResponse = message([
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK8e2b5c0d1f3a4b6c-1",
    "Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bK-21630-1-0;received=192.0.2.10;rport=40000",
    "From: sipp <sip:sipp@192.0.2.10:40000>;tag=21630SIPpTag001",
    "To: service <sip:service@127.0.0.1:5060>;tag=21632SIPpTag011",
    "Call-ID: 1-21630@192.0.2.10",
    "CSeq: 1 INVITE",
    "Contact: <sip:127.0.0.1:5070;transport=UDP>",
    "Content-Length: 0",
])

/// Registered by ParserBenchmarks' `benchmarks`, under its configuration (allocations checked against Thresholds/).
func registerForwardBenchmarks() {
    Benchmark("Forward INVITE from a phone (parse + proxy)") { benchmark in
        try measureForward(benchmark, invite, from: phone)
    }

    Benchmark("Forward 200 OK from the core (parse + proxy)") { benchmark in
        try measureForward(benchmark, okResponse, from: core)
    }
}

/// Parses and forwards `bytes` once per scaled iteration; one checked forward first (not measured).
private func measureForward(_ benchmark: Benchmark, _ bytes: [UInt8], from source: EndpointAddress) throws {
    let parser = try SIPParser()
    let proxy = StatelessProxy(configuration: ProxyConfiguration(advertised: edge, upstreams: [core],
                                                                 flowKey: Array("benchmark flow token key".utf8)))
    try bytes.withPacketBytes { packet in
        guard case .forward = proxy.process(try parser.parse(packet), source: source), !proxy.output.isEmpty else {
            preconditionFailure("benchmark message not forwarded")
        }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(proxy.process(try parser.parse(packet), source: source))
        }
    }
}
