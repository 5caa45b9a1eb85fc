/// A worker's transactions by ``TransactionKey``, each with a `UInt32` the caller owns (typically an index into its
/// own transaction state): the map matches messages to transactions and stores nothing else.
///
/// All memory is allocated by `init`, for `capacity` transactions; insert, find and remove allocate nothing. When
/// `capacity` transactions are live, an insert of a new key returns ``InsertResult/full`` (the caller answers a new
/// INVITE 503 with Retry-After); no entry is ever evicted, and messages of live transactions still match.
///
/// Layout, all in one preallocated `[UInt64]` (one array, so a copy of the struct costs one retain):
/// - An index of `2^k ≥ 2 × capacity` slots, so the load factor stays at or below 1/2, with linear probing. A slot
///   is one word: the key's 32-bit hash tag and the entry number + 1 (0: empty). The tag picks the home slot (its
///   low bits) and rejects almost every non-matching slot without touching the entry.
/// - `capacity` entries of `1 + keyBytes / 8` words: the caller's value and the entry's generation, then the key,
///   compared in full after the tag. A key longer than `keyBytes` is not tracked: ``InsertResult/keyTooLong`` (the
///   caller forwards that message statelessly).
/// - Removal shifts the rest of the probe run back (no tombstones), so heavy churn never lengthens probes.
///
/// The hash is seeded per map, so a sender who chooses branches cannot aim many of them at one probe run without
/// knowing the seed.
///
/// A struct with array storage: a copy shares the array until either copy changes (then it is copied whole).
/// Keep one per worker and mutate it in place. Hold it in a struct or pass it `inout`: a method called through a
/// class's stored property may work on a copy (a retain and a release per call).
public struct TransactionMap: Sendable {
    /// Names one live entry, for ``remove(_:)-(Handle)`` without hashing the key again. An entry's generation moves
    /// on when it is removed, so an old handle stops matching, even after the entry holds another transaction.
    /// (A generation is 32 bits: a handle kept across 2 billion reuses of its entry could match again.)
    public struct Handle: Hashable, Sendable {
        let entry: UInt32
        let generation: UInt32
    }

    public enum InsertResult: Equatable, Sendable {
        /// The key is new and now maps to the value given.
        case inserted(Handle)
        /// The key was there already (a retransmission): its entry and value are unchanged.
        case exists(Handle, value: UInt32)
        /// `capacity` transactions are live and the key is not one of them.
        case full
        /// The key needs more than `keyBytes` of storage (or a field longer than 255 bytes): not tracked.
        case keyTooLong
    }

    /// The most transactions the map holds at once.
    public let capacity: Int
    /// Key storage per entry, in bytes. Every RFC 3261 key of common clients fits in 128 (two 8-byte header words,
    /// a branch of up to about 50 bytes, a host name of up to about 60); RFC 2543 fallback keys carry the whole
    /// Request-URI, Call-ID and top Via and often need 256.
    public let keyBytes: Int
    /// Live transactions.
    public private(set) var count = 0

    private static let noEntry = UInt32.max

    /// The index slots, then the entries. An entry's first word is its value (low half) and generation (high
    /// half; odd while the entry is live); a free entry's value is the next free entry. Its key follows.
    private var words: [UInt64]
    private let slotMask: Int
    /// Where entry 0 starts in ``words``: the number of index slots.
    private let entriesStart: Int
    private let wordsPerEntry: Int
    /// First free entry, or ``noEntry`` when the map is full.
    private var freeHead: UInt32
    private let keyHash: KeyHash

    /// - Parameters:
    ///   - capacity: the most live transactions (`transactions.max_per_worker`), 1 to 2^30.
    ///   - keyBytes: key storage per entry, a multiple of 8 from 32 to 2,040.
    ///   - seed: hash seed; random by default. Tests pass one to be repeatable.
    public init(capacity: Int, keyBytes: Int = 128, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        precondition(capacity >= 1 && capacity <= 1 << 30, "transaction map capacity out of range")
        precondition(keyBytes >= 32 && keyBytes <= 2_040 && keyBytes % 8 == 0, "transaction key size out of range")
        self.capacity = capacity
        self.keyBytes = keyBytes
        keyHash = KeyHash(seed: seed)
        var slotCount = 8
        while slotCount < 2 * capacity { slotCount <<= 1 }
        slotMask = slotCount - 1
        entriesStart = slotCount
        wordsPerEntry = 1 + keyBytes / 8
        words = [UInt64](repeating: 0, count: slotCount + capacity * wordsPerEntry)
        for entry in 0..<capacity {
            words[slotCount + entry * wordsPerEntry] = entry == capacity - 1 ? UInt64(Self.noEntry) : UInt64(entry + 1)
        }
        freeHead = 0
    }

    /// Bytes the map allocated: index and entries. Divide by `capacity` for the cost per transaction.
    public var storageBytes: Int {
        words.count * MemoryLayout<UInt64>.stride
    }

    /// Maps `key` to `value` unless the key is there already (then reports the value it has).
    public mutating func insert(_ key: TransactionKey, value: UInt32) -> InsertResult {
        guard key.wordCount < wordsPerEntry else { return .keyTooLong }
        let tag = key.hash(keyHash)
        let (position, found) = probe(key, tag: tag)
        if let found {
            let header = words[headerIndex(found)]
            return .exists(Handle(entry: UInt32(found), generation: Self.generation(header)),
                           value: Self.value(header))
        }
        guard freeHead != Self.noEntry else { return .full }
        let entry = Int(freeHead)
        let header = headerIndex(entry)
        freeHead = Self.value(words[header])
        let generation = Self.generation(words[header]) &+ 1
        words[header] = UInt64(generation) << 32 | UInt64(value)
        key.store(in: &words, at: header + 1)
        words[position] = UInt64(tag) << 32 | UInt64(entry + 1)
        count += 1
        return .inserted(Handle(entry: UInt32(entry), generation: generation))
    }

    /// The value of the transaction `key` names, or nil.
    public func find(_ key: TransactionKey) -> UInt32? {
        guard key.wordCount < wordsPerEntry else { return nil }
        guard let entry = probe(key, tag: key.hash(keyHash)).entry else { return nil }
        return Self.value(words[headerIndex(entry)])
    }

    /// The value of the entry `handle` names, or nil when that entry was removed.
    public func value(of handle: Handle) -> UInt32? {
        isLive(handle) ? Self.value(words[headerIndex(Int(handle.entry))]) : nil
    }

    /// Removes the transaction `key` names; returns its value, or nil when there was none.
    @discardableResult
    public mutating func remove(_ key: TransactionKey) -> UInt32? {
        guard key.wordCount < wordsPerEntry else { return nil }
        let (position, found) = probe(key, tag: key.hash(keyHash))
        guard let found else { return nil }
        let value = Self.value(words[headerIndex(found)])
        removeEntry(found, at: position)
        return value
    }

    /// Removes the entry `handle` names; false when it was removed already.
    @discardableResult
    public mutating func remove(_ handle: Handle) -> Bool {
        guard isLive(handle) else { return false }
        let entry = Int(handle.entry)
        // The stored key words are what was hashed: hash them again for the home slot, then find the entry's slot
        // in the probe run by entry number, without comparing keys.
        let wanted = UInt64(entry + 1)
        var position = Int(storedHashTag(of: entry)) & slotMask
        while words[position] & 0xFFFF_FFFF != wanted {
            position = (position + 1) & slotMask
        }
        removeEntry(entry, at: position)
        return true
    }

    // MARK: Internals

    @inline(__always)
    private func headerIndex(_ entry: Int) -> Int {
        entriesStart + entry * wordsPerEntry
    }

    @inline(__always)
    private static func value(_ header: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: header)
    }

    @inline(__always)
    private static func generation(_ header: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: header >> 32)
    }

    private func isLive(_ handle: Handle) -> Bool {
        guard Int(handle.entry) < capacity, handle.generation & 1 == 1 else { return false }
        return Self.generation(words[headerIndex(Int(handle.entry))]) == handle.generation
    }

    /// The slot holding `key` and its entry, or the empty slot where it would go. The load factor (at most 1/2)
    /// guarantees an empty slot, so the loop ends.
    @inline(__always)
    private func probe(_ key: TransactionKey, tag: UInt32) -> (position: Int, entry: Int?) {
        var position = Int(tag) & slotMask
        while true {
            let slot = words[position]
            if slot == 0 { return (position, nil) }
            if UInt32(truncatingIfNeeded: slot >> 32) == tag {
                let entry = Int(UInt32(truncatingIfNeeded: slot)) - 1
                if key.isStored(in: words, at: headerIndex(entry) + 1) { return (position, entry) }
            }
            position = (position + 1) & slotMask
        }
    }

    /// Frees `entry` and empties its slot, shifting later members of the probe run back into the gap (Knuth's
    /// Algorithm R): every key stays reachable from its home without tombstones.
    private mutating func removeEntry(_ entry: Int, at position: Int) {
        let header = headerIndex(entry)
        words[header] = UInt64(Self.generation(words[header]) &+ 1) << 32 | UInt64(freeHead)
        freeHead = UInt32(entry)
        count -= 1
        var hole = position
        var next = (hole + 1) & slotMask
        while true {
            let slot = words[next]
            if slot == 0 { break }
            let home = Int(UInt32(truncatingIfNeeded: slot >> 32)) & slotMask
            // The slot may move into the hole unless its home lies after the hole (cyclically, up to `next`).
            if (next &- home) & slotMask >= (next &- hole) & slotMask {
                words[hole] = slot
                hole = next
            }
            next = (next + 1) & slotMask
        }
        words[hole] = 0
    }

    /// The hash tag of the key stored in `entry` (as ``TransactionKey/hash(_:)`` gave it): the stored words are the
    /// ones that were hashed, and the first holds their count.
    private func storedHashTag(of entry: Int) -> UInt32 {
        let first = headerIndex(entry) + 1
        let wordCount = Int((words[first] >> 16) & 0xFF)
        var state = keyHash.start
        for index in first..<first + wordCount {
            state = keyHash.absorb(words[index], into: state)
        }
        return keyHash.finish(state)
    }
}
