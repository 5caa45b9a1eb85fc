import SIPBytes
import SIPTestSupport
import Testing

/// ScratchBytes is the proxy's assembly buffer for every forwarded message: what it holds must be exactly what an
/// array given the same appends holds, through growth and truncation.
@Suite struct ScratchBytesTests {
    /// Seeded random appends of every kind, mirrored into an array; compared after each step.
    @Test(arguments: [1, 2, 3, 4, 5])
    func randomAppendsMatchAnArray(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var scratch = ScratchBytes(capacity: 16)  // small, so growth happens often
        var mirror: [UInt8] = []
        for _ in 0..<2_000 {
            switch random.next() % 5 {
            case 0:
                let byte = UInt8(truncatingIfNeeded: random.next())
                scratch.append(byte)
                mirror.append(byte)
            case 1:
                let bytes = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                scratch.append(bytes: bytes)
                mirror.append(contentsOf: bytes)
            case 2:
                let value = random.next() >> (random.next() % 64)
                appendDecimal(value, to: &scratch)
                appendDecimal(value, to: &mirror)
            case 3:
                scratch.append(ascii: ";branch=z9hG4bK")
                mirror.append(ascii: ";branch=z9hG4bK")
            default:
                if mirror.count > 4_000 || random.next() % 4 == 0 {
                    let keep = mirror.isEmpty ? 0 : Int(random.next() % UInt64(mirror.count))
                    scratch.truncate(to: keep)
                    mirror.removeLast(mirror.count - keep)
                }
            }
            #expect(scratch.count == mirror.count)
        }
        #expect(scratch.bytes == mirror)
        var tail: [UInt8] = [9]
        scratch.append(0..<scratch.count, to: &tail)
        #expect(tail == [9] + mirror)
    }

    @Test func growsPastItsFirstCapacity() {
        var scratch = ScratchBytes(capacity: 64)
        let line = Array("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n".utf8)
        for _ in 0..<1_000 { scratch.append(bytes: line) }
        #expect(scratch.count == 1_000 * line.count)
        #expect(scratch.capacity >= scratch.count)
        #expect(Array(scratch.bytes.suffix(line.count)) == line)
    }
}

/// ByteSlots holds the flow-token cache's tokens: each slot must give back exactly the text last stored in it,
/// untouched by its neighbours, and match only that text.
@Suite struct ByteSlotsTests {
    @Test func eachSlotHoldsTheEncodingLastStoredInIt() {
        var slots = ByteSlots(count: 4, slotCapacity: 48)
        var random = SplitMix64(seed: 7)
        var expected = [[UInt8]](repeating: [], count: 4)
        for _ in 0..<200 {
            let slot = Int(random.next() % 4)
            let raw = (0..<Int(random.next() % 37)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            slots.store(base64URLOf: raw, in: slot)
            var text: [UInt8] = []
            Base64URL.append(raw, to: &text)
            expected[slot] = text
            for index in 0..<4 {
                var out: [UInt8] = [0x2A]
                slots.append(slot: index, to: &out)
                let length = slots.length(of: index)
                #expect(out == [0x2A] + expected[index])
                #expect(length == expected[index].count)
            }
        }
    }

    @Test func aSlotMatchesOnlyItsOwnTextWhole() {
        var slots = ByteSlots(count: 2, slotCapacity: 48)
        slots.store(base64URLOf: Array("flow token body".utf8), in: 1)
        var text: [UInt8] = []
        slots.append(slot: 1, to: &text)
        let (whole, inEmptySlot, prefix) = text.withPacketBytes { bytes in
            (slots.holds(bytes, bytes.all, in: 1), slots.holds(bytes, bytes.all, in: 0),
             slots.holds(bytes, ByteSpan(offset: 0, length: bytes.count - 1), in: 1))
        }
        #expect(whole)
        #expect(!inEmptySlot, "an empty slot holds nothing")
        #expect(!prefix, "a prefix is not the text")
        for index in text.indices {
            var changed = text
            changed[index] ^= 0x01
            let held = changed.withPacketBytes { slots.holds($0, $0.all, in: 1) }
            #expect(!held, "changed at \(index)")
        }
    }
}
