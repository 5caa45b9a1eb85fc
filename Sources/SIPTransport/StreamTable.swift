/// A worker's connections by slot, with generations: bounded (`capacity`), O(1) to find a connection from its key.
struct StreamTable {
    private var slots: [StreamConnection?]
    private var generations: [UInt16]
    private var free: [Int]
    let capacity: Int
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0 && capacity <= 65_535, "stream table capacity must be 1...65535")
        self.capacity = capacity
        slots = []
        generations = []
        free = []
    }

    /// A fresh key for a new connection, or nil when the table is full.
    mutating func reserve() -> UInt32? {
        if let slot = free.popLast() {
            generations[slot] &+= 1
            return UInt32(generations[slot]) << 16 | UInt32(slot)
        }
        guard slots.count < capacity else { return nil }
        slots.append(nil)
        generations.append(1)
        return UInt32(1) << 16 | UInt32(slots.count - 1)
    }

    /// Stores `connection` under the key ``reserve()`` gave it.
    mutating func insert(_ connection: StreamConnection) {
        let slot = Int(connection.key & 0xFFFF)
        precondition(slots[slot] == nil && UInt32(generations[slot]) << 16 | UInt32(slot) == connection.key)
        slots[slot] = connection
        count += 1
    }

    /// Gives back a key that was reserved but never used.
    mutating func release(unused key: UInt32) {
        free.append(Int(key & 0xFFFF))
    }

    /// The open connection with exactly this key (slot and generation), or nil.
    func connection(_ key: UInt32) -> StreamConnection? {
        let slot = Int(key & 0xFFFF)
        guard slot < slots.count, let connection = slots[slot], connection.key == key else { return nil }
        return connection
    }

    mutating func remove(_ connection: StreamConnection) {
        let slot = Int(connection.key & 0xFFFF)
        guard slot < slots.count, slots[slot] === connection else { return }
        slots[slot] = nil
        free.append(slot)
        count -= 1
    }

    /// Every open connection (for idle sweeps and shutdown).
    var all: [StreamConnection] { slots.compactMap { $0 } }
}
