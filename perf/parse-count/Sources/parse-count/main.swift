import Foundation
import SIPBytes
import SIPParsing

// The simple INVITE of Benchmarks/ParserBenchmarks (the file it reads too), parsed N times (argument, default
// 20,000). Prints the CSeq sum (so the loop cannot be dropped) and the wall time per parse, which is only indicative:
// count instructions instead.
let messageFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../../../../Benchmarks/Messages/simple-invite.sip")
let message = Array(try Data(contentsOf: messageFile))
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
