public import SIPBytes
public import SIPProxyCore
public import SIPUring

/// One client connection (TCP or TLS) of a worker: its bounded buffers and its place in the send order.
final class StreamConnection {
    /// Slot in the worker's table (low 16 bits) and that slot's generation (high 16): the connection part of a
    /// flow token, and the io_uring key. A reused slot has a new generation, so stale tokens and late completions
    /// never reach the new connection.
    let key: UInt32
    let descriptor: Int32
    let transport: TransportKind
    let peer: EndpointAddress
    /// Received bytes not yet framed (plaintext for TLS). At most one message plus one segment.
    var inbound: [UInt8] = []
    /// Bytes waiting while a send is in flight (ciphertext for TLS). Bounded by `StreamLimits.maxSendQueueBytes`.
    var outbound: [UInt8] = []
    var sendInFlight = false
    /// Close once the queued bytes are sent (after a final 400).
    var closeWhenFlushed = false
    /// For a connection of the upstream pool: its slot there. Nil for a client's connection.
    var poolSlot: Int?
    /// An outbound connection not usable yet: its connect (and for TLS its handshake) has not completed.
    var isConnecting = false
    /// The peer ended the stream (TLS close_notify): what it sent before is still handled, then it is closed.
    var peerClosed = false
    /// Milliseconds (monotonic) of the last bytes received.
    var lastActivity: UInt64
    let tls: TLSSession?
    var isClosed = false

    init(key: UInt32, descriptor: Int32, transport: TransportKind, peer: EndpointAddress, now: UInt64,
         tls: TLSSession?) {
        self.key = key
        self.descriptor = descriptor
        self.transport = transport
        self.peer = peer
        self.lastActivity = now
        self.tls = tls
    }
}

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

/// One place in a worker's upstream pool: the connection filling it (if any) and when to try again.
struct UpstreamPoolSlot {
    let upstream: EndpointAddress
    var connection: StreamConnection?
    /// Monotonic milliseconds before which no reconnect is tried.
    var nextAttempt: UInt64 = 0
    /// The delay the next failure waits (doubles per failure, reset by a successful connect).
    var backoff: UInt64
}
