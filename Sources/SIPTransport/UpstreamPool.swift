import SIPBytes
import SIPProxyCore
import SIPSettings

/// A worker's persistent connections toward the upstreams when they are reached over TCP or TLS: a few slots per
/// upstream, each holding a connection or waiting to dial again, with exponential backoff per slot. Decides what
/// to dial and when; the stream transport does the dialling. Empty for UDP upstreams.
struct UpstreamPool {
    struct Slot {
        let upstream: EndpointAddress
        var connection: StreamConnection?
        /// Monotonic milliseconds before which no dial is tried.
        var nextAttempt: UInt64 = 0
        /// The delay the next failure waits (doubles per failure in a row, reset by a successful connect).
        var backoff: UInt64
        /// Its upstream left the set: not dialled, and reused for the next new member.
        var retired = false
    }

    private(set) var slots: [Slot] = []
    let settings: UpstreamPoolSettings
    private let isStream: Bool

    /// `transport`: the upstreams' transport; a datagram transport needs no pool.
    init(upstreams: [EndpointAddress], transport: TransportKind, settings: UpstreamPoolSettings) {
        self.settings = settings
        isStream = transport.isStream
        guard transport.isStream else { return }
        for upstream in upstreams {
            for _ in 0..<max(settings.connectionsPerUpstream, 1) {
                slots.append(Slot(upstream: upstream, backoff: settings.reconnectMinMilliseconds))
            }
        }
    }

    var isEmpty: Bool { slots.isEmpty }

    /// Slots with no connection whose wait is over: dial them.
    func slotsToDial(now: UInt64) -> [Int] {
        slots.indices.filter { !slots[$0].retired && slots[$0].connection == nil && now >= slots[$0].nextAttempt }
    }

    func upstream(of slot: Int) -> EndpointAddress { slots[slot].upstream }

    /// A dial for `slot` is under way on `connection`.
    mutating func dialling(_ slot: Int, on connection: StreamConnection) {
        slots[slot].connection = connection
    }

    /// A dial could not even start (no socket, no TLS session): try again after `delay` (the slot's backoff when
    /// nil), without counting it as a failure in a row.
    mutating func postpone(_ slot: Int, now: UInt64, delay: UInt64? = nil) {
        slots[slot].nextAttempt = now + (delay ?? slots[slot].backoff)
    }

    /// The slot's connection became usable: the next failure starts from the shortest backoff again.
    mutating func connected(_ slot: Int) {
        slots[slot].backoff = settings.reconnectMinMilliseconds
    }

    /// `connection` of `slot` is gone (failed to connect, or lost later): dial again after the backoff, which
    /// doubles for the failure after, up to the maximum. A connection the slot no longer holds changes nothing.
    mutating func lost(_ connection: StreamConnection, now: UInt64) {
        guard let slot = connection.poolSlot, slot < slots.count, slots[slot].connection === connection else { return }
        slots[slot].connection = nil
        slots[slot].nextAttempt = now + slots[slot].backoff
        slots[slot].backoff = min(slots[slot].backoff * 2, settings.reconnectMaxMilliseconds)
    }

    /// Makes the slots match a new upstream set: members that left retire their slots (their connections are
    /// returned, to be closed), new members take retired slots or new ones. Slot numbers never change, so a
    /// connection's `poolSlot` stays valid.
    mutating func reconcile(with upstreams: [EndpointAddress], now: UInt64) -> [StreamConnection] {
        guard isStream else { return [] }
        var closing: [StreamConnection] = []
        let wanted = Set(upstreams)
        for index in slots.indices where !slots[index].retired && !wanted.contains(slots[index].upstream) {
            slots[index].retired = true
            if let connection = slots[index].connection { closing.append(connection) }
            slots[index].connection = nil
        }
        let present = Set(slots.filter { !$0.retired }.map(\.upstream))
        for upstream in upstreams where !present.contains(upstream) {
            for _ in 0..<max(settings.connectionsPerUpstream, 1) {
                let fresh = Slot(upstream: upstream, nextAttempt: now, backoff: settings.reconnectMinMilliseconds)
                if let free = slots.firstIndex(where: { $0.retired && $0.connection == nil }) {
                    slots[free] = fresh
                } else {
                    slots.append(fresh)
                }
            }
        }
        return closing
    }

    /// A usable connection to `upstream`, or nil when none is up. The first one up takes the traffic, so a
    /// transaction's requests keep their order; the others stand by.
    func connection(to upstream: EndpointAddress) -> StreamConnection? {
        for slot in slots where slot.upstream == upstream {
            if let connection = slot.connection, connection.isUsable { return connection }
        }
        return nil
    }
}
