import SIPBytes
import SIPParsing

// The simple INVITE of Benchmarks/ParserBenchmarks, parsed N times (argument, default 20,000). Prints the CSeq sum
// (so the loop cannot be dropped) and the wall time per parse, which is only indicative: count instructions instead.
let lines = [
    "INVITE sip:bob@biloxi.com SIP/2.0",
    "Via: SIP/2.0/UDP pc33.atlanta.com:5060;branch=z9hG4bK776asdhds;rport",
    "Max-Forwards: 70",
    "To: Bob <sip:bob@biloxi.com>",
    "From: Alice <sip:alice@atlanta.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.com>",
    "Content-Length: 0",
]
let message = Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
let parser = try SIPParser()
let count = Int(CommandLine.arguments.dropFirst().first ?? "20000") ?? 20_000
var sum: UInt64 = 0
let clock = ContinuousClock()
let start = clock.now
for _ in 0..<count {
    message.withPacketBytes { packet in
        sum &+= UInt64((try? parser.parse(packet).cseq.number) ?? 0)
    }
}
print("cseq sum \(sum), \((clock.now - start) / count) per parse")
