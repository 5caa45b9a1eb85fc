import SIPBytes
import Testing

/// `firstIndex`/`lastIndex` step 16 bytes at a time where they can (C, SSE2) and fall back to a byte loop near the
/// end of the buffer; every span of every buffer must give what a plain loop gives.
@Suite struct ByteSearchTests {
    @Test func searchesAgreeWithAByteLoopOnEverySpan() {
        var generator = SystemRandomNumberGenerator()
        var mismatches: [String] = []
        for length in [0, 1, 7, 15, 16, 17, 31, 32, 33, 47, 64, 65, 100] {
            for _ in 0..<4 {
                // A small alphabet, so most spans hold the byte looked for, some more than once, some not at all.
                let buffer = (0..<length).map { _ in UInt8.random(in: 0x3A...0x3D, using: &generator) }
                buffer.withPacketBytes { packet in
                    for start in 0...length {
                        for end in start...length {
                            let span = ByteSpan(from: start, to: end)
                            for byte: UInt8 in [0x3A, 0x3C, 0x3E] {
                                let first = (start..<end).first { buffer[$0] == byte }
                                let last = (start..<end).last { buffer[$0] == byte }
                                if packet.firstIndex(of: byte, in: span) != first
                                    || packet.lastIndex(of: byte, in: span) != last {
                                    mismatches.append("\(byte) in \(buffer) \(start)..<\(end)")
                                }
                            }
                        }
                    }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    /// The name-addr and addr-spec searches (one SIMD pass each) against the byte loops they replace, on every span
    /// of buffers drawn from the bytes they look for and a filler.
    @Test func bracketAndAddrSpecSearchesAgreeWithByteLoopsOnEverySpan() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("<>\";, a\t\r\n".utf8)
        let addrSpecStops = Set("; \t\r\n,\"<>".utf8)
        var mismatches: [String] = []
        for length in [0, 1, 15, 16, 17, 31, 32, 33, 50, 64, 65] {
            for _ in 0..<6 {
                // Mostly filler, so spans with no stop at all and with exactly one bracket pair are common.
                let buffer = (0..<length).map { _ in
                    Int.random(in: 0..<8, using: &generator) == 0
                        ? alphabet.randomElement(using: &generator)! : UInt8(ascii: "x")
                }
                buffer.withPacketBytes { packet in
                    for start in 0...length {
                        for end in start...length {
                            let span = ByteSpan(from: start, to: end)
                            let slice = buffer[start..<end]
                            let opens = slice.indices.filter { buffer[$0] == UInt8(ascii: "<") }
                            let closes = slice.indices.filter { buffer[$0] == UInt8(ascii: ">") }
                            var brackets: (Int, Int)?
                            if !slice.contains(UInt8(ascii: "\"")), opens.count == 1, closes.count == 1,
                                closes[0] > opens[0] {
                                brackets = (opens[0], closes[0])
                            }
                            let found = packet.angleBrackets(in: span)
                            if found?.open != brackets?.0 || found?.close != brackets?.1 {
                                mismatches.append("brackets in \(buffer) \(start)..<\(end)")
                            }
                            let stop = slice.firstIndex { addrSpecStops.contains($0) } ?? end
                            if packet.endOfAddrSpec(in: span) != stop {
                                mismatches.append("addr-spec in \(buffer) \(start)..<\(end)")
                            }
                        }
                    }
                }
            }
        }
        let firstMismatches = mismatches.prefix(5)
        #expect(mismatches.count == 0, "\(firstMismatches)")
    }
}
