import Foundation
import Benchmark
import SIPParsing
import SIPSecurity

// Parser throughput and allocations on three realistic messages, plus a reference scan of the same bytes; the
// stateless proxy's forwarding of two messages (ForwardBenchmarks.swift) under the same configuration.
//
// The machine these run on is shared and noisy, so quote wall-clock figures as a ratio to the reference benchmark
// from the same run. `mallocCountTotal` does not depend on the machine: it must be 0 for every parse.
//
// Each sample parses the message `scalingFactor` (1,000) times. The text output divides by that (figures marked `*`
// are per parse); stored samples and Thresholds/ hold per-sample values.
// (`instructions` would be the better time metric, but this machine has no hardware perf counters.)

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 1_000_000,
        // `thresholds check` compares only mallocCountTotal, the one metric kept in Thresholds/. Every sample counts
        // 16 allocations that belong to the harness (the reference scan shows the same 16, and `--allocation-stacks`
        // finds none in the measured region); one allocation per parse would add 1,000.
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
    )

    Benchmark("Parse simple INVITE") { benchmark in
        try measureParse(benchmark, Messages.simpleInvite)
    }

    Benchmark("Parse INVITE with SDP and 12 headers") { benchmark in
        try measureParse(benchmark, Messages.inviteWithSDP)
    }

    Benchmark("Parse 200 OK response") { benchmark in
        try measureParse(benchmark, Messages.okResponse)
    }

    // The edge policy on a parsed INVITE with SDP (the parse is outside the measured loop).
    Benchmark("Validate INVITE with SDP (security policy)") { benchmark in
        let parser = try SIPParser()
        let validator = SecurityValidator(configuration: SecurityConfiguration())
        let message = Messages.inviteWithSDP
        try message.withPacketBytes { packet in
            let parsed = try parser.parse(packet)
            precondition(validator.validate(parsed, fromPublicSide: true) == .accept, "benchmark message refused")
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(validator.validate(parsed, fromPublicSide: true))
            }
        }
    }

    // The floor for any parser: one pass over the same bytes looking for one byte value, as a plain Swift loop.
    // Parse time divided by this time is the figure to compare across runs and machines.
    Benchmark("Reference byte scan of the simple INVITE") { benchmark in
        let message = Messages.simpleInvite
        precondition(countCarriageReturns(message, from: 0) == 10, "reference message changed")
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            // `identity` hides the start offset from the optimizer, so the scan cannot be hoisted out of the loop.
            blackHole(countCarriageReturns(message, from: identity(0)))
        }
    }

    registerForwardBenchmarks()
}

/// Parses `message` once per scaled iteration. Setup (the bytes, the parser, one checked parse) is not measured.
private func measureParse(_ benchmark: Benchmark, _ message: [UInt8]) throws {
    let parser = try SIPParser()
    // A message that does not parse would measure the error path instead: fail loudly.
    let cseq = try message.withPacketBytes { packet in try parser.parse(packet).cseq.number }
    precondition(cseq == Messages.cseq, "benchmark message parsed to the wrong CSeq")
    benchmark.startMeasurement()
    for _ in benchmark.scaledIterations {
        message.withPacketBytes { packet in
            blackHole(try? parser.parse(packet).cseq.number)
        }
    }
}

/// Number of CR bytes in `bytes[from...]`.
@inline(never)
private func countCarriageReturns(_ bytes: [UInt8], from start: Int) -> Int {
    var count = 0
    for index in start..<bytes.count where bytes[index] == 0x0D {
        count &+= 1
    }
    return count
}

private enum Messages {
    static let cseq: UInt32 = 314_159

    /// A minimal realistic INVITE: 8 headers, no body (328 bytes).
    static let simpleInvite = load("simple-invite.sip")
    /// An INVITE as a softphone sends it: 12 headers and a 240-byte SDP offer (PCMU, PCMA, telephone-event) as its
    /// body (779 bytes).
    static let inviteWithSDP = load("invite-sdp.sip")
    /// A 200 OK to that INVITE on its way back through two proxies: 2 Vias, Record-Route, a To tag (446 bytes).
    static let okResponse = load("ok-response.sip")

    /// The messages are files in Benchmarks/Messages/ (CRLF line ends), shared with perf/parse-count, which counts
    /// the instructions of the same parse. Read once, before anything is measured.
    private static func load(_ name: String) -> [UInt8] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Messages", isDirectory: true)
        guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else {
            fatalError("benchmark message \(name) missing from \(directory.path)")
        }
        return Array(data)
    }
}
