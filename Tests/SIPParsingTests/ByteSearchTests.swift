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
}
