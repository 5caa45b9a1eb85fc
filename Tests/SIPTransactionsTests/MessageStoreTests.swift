import SIPTransactions
import Testing

@Suite struct MessageStoreTests {
    private func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7) &+ seed } }

    private func read(_ store: MessageStore, _ handle: MessageStore.Handle) -> [UInt8] {
        var out: [UInt8] = []
        store.append(handle, to: &out)
        return out
    }

    @Test(arguments: [0, 1, 511, 512, 513, 1_500, 5_000])
    func aMessageComesBackByteForByte(length: Int) throws {
        var store = MessageStore(blocks: 16, blockSize: 512)
        let message = bytes(length, seed: 3)
        let stored = store.store(message)
        let handle = try #require(stored)
        #expect(read(store, handle) == message)
        #expect(store.freeBlocks == 16 - store.blocksNeeded(for: length))
        store.release(handle)
        #expect(store.freeBlocks == 16)
    }

    @Test func aMessageThatDoesNotFitTakesNothing() throws {
        var store = MessageStore(blocks: 4, blockSize: 100)
        let stored = store.store(bytes(250, seed: 1))
        let kept = try #require(stored)
        #expect(store.store(bytes(150, seed: 2)) == nil, "needs 2 blocks, 1 is free")
        #expect(store.freeBlocks == 1)
        #expect(read(store, kept) == bytes(250, seed: 1))
    }

    @Test func churnAgainstAModelLosesNoBlockAndMixesNoBytes() throws {
        var store = MessageStore(blocks: 64, blockSize: 64)
        var live: [(MessageStore.Handle, [UInt8])] = []
        var generator = SystemRandomNumberGenerator()
        for round in 0..<20_000 {
            if !live.isEmpty, Bool.random(using: &generator) {
                let (handle, message) = live.remove(at: Int.random(in: 0..<live.count, using: &generator))
                #expect(read(store, handle) == message)
                store.release(handle)
            } else {
                let message = bytes(Int.random(in: 0...400, using: &generator), seed: UInt8(truncatingIfNeeded: round))
                if let handle = store.store(message) { live.append((handle, message)) }
            }
            let used = live.reduce(0) { $0 + store.blocksNeeded(for: $1.1.count) }
            #expect(store.freeBlocks == 64 - used)
            if store.freeBlocks != 64 - used { break }
        }
        for (handle, message) in live { #expect(read(store, handle) == message) }
    }
}
