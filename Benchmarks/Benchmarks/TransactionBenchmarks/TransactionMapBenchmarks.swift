import Benchmark
import SIPBytes
import SIPParsing
import SIPTransactions

// The transaction map at the default capacity (65,536, `transactions.max_per_worker`) holding 50,000 live
// transactions, as a busy worker's would. Each sample runs 1,000 operations (`scalingFactor: .kilo`); the map is
// filled once, in setup, and every operation leaves it as it found it, so samples see the same steady state.
// `mallocCountTotal` must be 0 per operation: each sample counts only the harness's own allocations.

func transactionMapBenchmarks() {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 100_000,
        // As in ParserBenchmarks: only mallocCountTotal is kept in Thresholds/, with 0.1 allocations per operation
        // of slack.
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
    )

    // A new INVITE arrives: its key is built from the parsed message, inserted, found (its first retransmission)
    // and removed (the transaction ends). The parse is outside the measured loop.
    Benchmark("Map insert find remove of a new INVITE among 50000 live", configuration: configuration) {
        benchmark, fixture in
        fixture.withMap { map in
            fixture.newInvite.withPacketBytes { packet in
                let message = try! fixture.parser.parse(packet)
                benchmark.startMeasurement()
                for operation in benchmark.scaledIterations {
                    let key = TransactionKey.server(for: message)!
                    guard case .inserted(let handle) = map.insert(key, value: UInt32(operation)) else {
                        fatalError("benchmark INVITE already in the map, or the map is full")
                    }
                    blackHole(map.find(key))
                    blackHole(map.remove(handle))
                }
            }
        }
    } setup: {
        try MapFixture()
    }

    // A retransmission of one of the 50,000: build its key and find it.
    Benchmark("Map find of a retransmitted INVITE among 50000 live", configuration: configuration) {
        benchmark, fixture in
        fixture.withMap { map in
            fixture.liveInvite.withPacketBytes { packet in
                let message = try! fixture.parser.parse(packet)
                precondition(map.find(TransactionKey.server(for: message)!) != nil, "live INVITE not found")
                benchmark.startMeasurement()
                for _ in benchmark.scaledIterations {
                    blackHole(map.find(TransactionKey.server(for: message)!))
                }
            }
        }
    } setup: {
        try MapFixture()
    }

    // The same three operations on 4,096 different client keys in turn, so they land all over the index and the
    // key storage instead of on one slot. A client key (branch and method) is shorter than the INVITE's server key
    // (branch and sent-by host), which is why this runs faster than the INVITE above.
    Benchmark("Map insert find remove of spread client keys among 50000 live", configuration: configuration) {
        benchmark, fixture in
        let invite = SIPMethod(known: .invite, span: .empty)
        let spans = fixture.branches.spans
        fixture.withMap { map in
            fixture.branches.text.withPacketBytes { bytes in
                var next = 0
                benchmark.startMeasurement()
                for operation in benchmark.scaledIterations {
                    let key = TransactionKey.client(branch: spans[next], in: bytes, method: invite, methodBytes: bytes)
                    next = (next + 1) & (spans.count - 1)
                    guard case .inserted(let handle) = map.insert(key, value: UInt32(operation)) else {
                        fatalError("benchmark branch already in the map, or the map is full")
                    }
                    blackHole(map.find(key))
                    blackHole(map.remove(handle))
                }
            }
        }
    } setup: {
        try MapFixture()
    }
}

/// A map at the default capacity with 50,000 live server transactions, and the messages the benchmarks use.
/// A class, so each sample mutates the one map in place.
private final class MapFixture {
    /// Lends the map in place. Calling a method on `fixture.map` would copy the struct for each call (a retain
    /// and a release of each of its arrays) and measure that instead.
    func withMap<Result>(_ body: (inout TransactionMap) -> Result) -> Result {
        body(&map)
    }

    static let liveCount = 50_000

    let parser: SIPParser
    var map = TransactionMap(capacity: 65_536)
    /// An INVITE whose transaction is not in the map.
    let newInvite = invite(branch: "z9hG4bK-new-transaction")
    /// An INVITE whose transaction is.
    let liveInvite = invite(branch: "z9hG4bK-live-\(liveCount / 2)")
    /// 4,096 branches of the edge's form (`z9hG4bK` and 16 hex digits), none in the map.
    let branches: (text: [UInt8], spans: [ByteSpan])

    init() throws {
        parser = try SIPParser()
        var text: [UInt8] = []
        var spans: [ByteSpan] = []
        for number in 0..<4_096 {
            let hex = String(UInt64(number) &* 0x9E37_79B9_7F4A_7C15, radix: 16)
            let branch = Array(("z9hG4bK" + String(repeating: "0", count: 16 - hex.count) + hex).utf8)
            spans.append(ByteSpan(offset: text.count, length: branch.count))
            text += branch
        }
        branches = (text, spans)
        for number in 0..<Self.liveCount {
            let bytes = Self.invite(branch: "z9hG4bK-live-\(number)")
            let inserted = try bytes.withPacketBytes { packet in
                map.insert(TransactionKey.server(for: try parser.parse(packet))!, value: UInt32(number))
            }
            guard case .inserted = inserted else { fatalError("fixture INVITE \(number) not inserted: \(inserted)") }
        }
    }

    /// A softphone's INVITE without a body: 9 headers, about 330 bytes.
    static func invite(branch: String) -> [UInt8] {
        let lines = [
            "INVITE sip:bob@biloxi.example.com SIP/2.0",
            "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=\(branch);rport",
            "Max-Forwards: 70",
            "To: Bob <sip:bob@biloxi.example.com>",
            "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
            "CSeq: 314159 INVITE",
            "Contact: <sip:alice@pc33.atlanta.example.com>",
            "Content-Length: 0",
        ]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }
}
