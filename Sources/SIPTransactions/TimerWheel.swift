/// Names one scheduled timer, for `TimerWheel.cancel(_:)`. It holds the timer's node and the node's generation at
/// scheduling time: once the timer fires or is cancelled the node's generation moves on, so an old handle no longer
/// matches and cancelling with it does nothing, even after the node carries another timer. (A generation is 32
/// bits: a handle kept across 4 billion reuses of its node could match again.)
public struct TimerHandle: Hashable, Sendable {
    let index: UInt32
    let generation: UInt32
}

/// A worker's transaction timers (RFC 3261 §17: A to M), as a hierarchical timing wheel with preallocated nodes.
///
/// The wheel belongs to one worker thread: no locks, and time is passed in as monotonic milliseconds. Each timer
/// carries a `UInt64` payload that the owner chooses (transaction slot and timer kind) and the wheel never reads.
///
/// Why hierarchical: SIP delays run from 500 ms (A, E) over 32 s (B, F, H, L, M) to 3 min (C). A single wheel with
/// rounds at a 1 ms tick either needs 180,000 slots or revisits every long timer once per turn, and it walks every
/// slot a sleeping worker skipped. Here a timer moves a few times at most, whatever its delay, and a jump of `now`
/// costs nothing for the slots that are empty.
///
/// Layout: 10 levels of 64 slots. Level *l* slots are 64^*l* ticks wide and a level spans 64^(*l*+1) ticks ahead of
/// the wheel's time, as a ring. A level's occupancy is one `UInt64`, so its next occupied slot is one
/// `trailingZeroBitCount`. Ten levels cover every delay below 2^60 ticks, so there is no overflow list and no
/// rounds; SIP's delays use the lowest four, and empty levels are skipped with a bitmap. A timer goes to the level
/// of its distance from the wheel's time (the highest base-64 digit of that distance), into the slot of its deadline.
/// When time reaches a slot of level *l* ≥ 1, its timers move to lower levels ("cascade"); level 0 slots are one
/// tick wide and hold only timers due at that tick.
///
/// Placing by distance, not by the highest digit where deadline and time differ (as tokio does), keeps a slot to
/// the timers due within its own width. With the latter, every timer straddling a 64³-tick boundary (262 s) shares
/// one level-3 slot, and with SIP's delays that is nearly every live timer, moved in one call.
///
/// Costs (L = 10 levels):
/// - `schedule` and `cancel`: O(1). Nodes live in one array allocated by `init`, linked by index into a doubly
///   linked list per slot, and come from a free list: no allocation after `init`.
/// - `popExpired`/`expire`: O(L) per timer fired and per slot cascaded, however far `now` jumped (a worker that slept
///   10 s pays for the timers due, not for 10,000 ticks). A timer whose delay is under 64^k ticks moves at most
///   k − 1 times before it fires: once for 500 ms, twice for 32 s and 3 min, 3 times for 1 h at the 1 ms tick. So
///   expiry is amortised O(1) per timer.
/// - The one uneven cost: a slot cascades whole, in the call that reaches it. At the 1 ms tick a level-2 slot holds
///   the timers due in a 4.1 s window: with 1 M live timers re-armed with delays up to 3 min, about 45,000 moves in
///   one call, every 4.1 s (Benchmarks/README.md has the measured time: a few ms).
///
/// Timing: a timer due at D ms fires in the first `expire(now:)` (or `popExpired(now:)`) whose `now` is at least
/// D rounded up to the next tick boundary: never early, late by less than one tick (exact with the default 1 ms
/// tick). Within one call, timers fire in deadline order, ties in any order.
///
/// A struct with array storage: a copy shares the nodes until either copy changes (then the whole array is copied).
/// Keep one per worker and mutate it in place.
public struct TimerWheel: Sendable {
    /// The most timers the wheel holds at once; `schedule` returns nil beyond it.
    public let capacity: Int
    /// Tick length: deadlines are rounded up to a multiple of it.
    public let tickMilliseconds: UInt64
    /// Timers scheduled and neither fired nor cancelled.
    public private(set) var count = 0

    /// One timer, or a free node. 32 bytes.
    private struct Node {
        /// Due tick: the deadline in ticks, rounded up.
        var deadline: UInt64 = 0
        var payload: UInt64 = 0
        /// Next node in the slot's list, or in the free list; -1 ends a list.
        var next: Int32 = -1
        var previous: Int32 = -1
        /// Moves on each time the node is freed, so handles to its earlier timers go stale.
        var generation: UInt32 = 0
        /// The slot (level × 64 + index in level) whose list holds the node; -1 when the node is free.
        var slot: Int32 = -1
    }

    private static let levelCount = 10
    private static let slotBits: UInt64 = 6
    private static let slotsPerLevel = 1 << slotBits
    /// The largest due tick. Later deadlines are clamped to it (2^60 ms is 36 million years); it keeps every shift
    /// and level below 64 bits.
    private static let lastTick: UInt64 = 1 << 60 - 1

    private var nodes: [Node]
    /// Head of the free list (linked through `Node.next`), or -1 when the wheel is full.
    private var freeHead: Int32
    /// Head node of each slot's list, or -1.
    private var slotHeads: [Int32]
    /// Per level, bit i set when slot i holds a timer.
    private var occupiedSlots: [UInt64]
    /// Bit l set when level l holds a timer.
    private var occupiedLevels: UInt16 = 0
    /// The wheel's time in ticks. Every timer due before it has fired; every timer of level l is due less than
    /// 64^(l+1) ticks after it, in a slot that starts at or after it. It only moves
    /// forward, in `popExpired`.
    private var elapsed: UInt64

    /// A wheel for up to `capacity` timers (the worker's transaction bound times timers per transaction), with time
    /// starting at `now` milliseconds.
    public init(capacity: Int, tickMilliseconds: UInt64 = 1, now: UInt64) {
        precondition(capacity >= 0 && capacity < Int(Int32.max), "timer wheel capacity out of range: \(capacity)")
        precondition(tickMilliseconds > 0, "timer wheel tick must be at least 1 ms")
        self.capacity = capacity
        self.tickMilliseconds = tickMilliseconds
        nodes = (0..<capacity).map { index in Node(next: index + 1 < capacity ? Int32(index + 1) : -1) }
        freeHead = capacity > 0 ? 0 : -1
        slotHeads = Array(repeating: -1, count: Self.levelCount * Self.slotsPerLevel)
        occupiedSlots = Array(repeating: 0, count: Self.levelCount)
        elapsed = min(now / tickMilliseconds, Self.lastTick)
    }

    /// Schedules a timer due `delay` milliseconds after `now`. Returns nil, and schedules nothing, when the wheel
    /// already holds `capacity` timers.
    public mutating func schedule(after delay: UInt64, payload: UInt64, now: UInt64) -> TimerHandle? {
        guard freeHead >= 0 else { return nil }
        let index = Int(freeHead)
        freeHead = nodes[index].next
        nodes[index].deadline = dueTick(now: now, delay: delay)
        nodes[index].payload = payload
        link(index)
        count += 1
        return TimerHandle(index: UInt32(index), generation: nodes[index].generation)
    }

    /// Cancels the timer of `handle`. Returns false, and does nothing, when it has already fired or been cancelled.
    @discardableResult
    public mutating func cancel(_ handle: TimerHandle) -> Bool {
        let index = Int(handle.index)
        guard index < nodes.count, nodes[index].generation == handle.generation, nodes[index].slot >= 0 else {
            return false
        }
        unlink(index)
        release(index)
        return true
    }

    /// Removes one timer due at `now` and returns its payload; nil when none is due. Call it until nil: the owner
    /// may schedule and cancel timers between calls (a retransmission timer re-arming itself, say), which
    /// `expire(now:_:)`'s closure cannot.
    public mutating func popExpired(now: UInt64) -> UInt64? {
        let target = min(now / tickMilliseconds, Self.lastTick)
        while let (slot, start) = earliestOccupiedSlot(), start <= target {
            elapsed = max(elapsed, start)
            if slot < Self.slotsPerLevel {
                // Level 0: every timer in the slot is due at `start`.
                let index = Int(slotHeads[slot])
                unlink(index)
                let payload = nodes[index].payload
                release(index)
                return payload
            }
            cascade(slot)
        }
        elapsed = max(elapsed, target)
        return nil
    }

    /// Fires every timer due at `now`: removes it and passes its payload to `body`. Returns how many fired.
    /// `body` must not touch this wheel (Swift's exclusivity rules forbid it); to reschedule from a handler, loop
    /// on `popExpired(now:)` instead.
    @discardableResult
    public mutating func expire(now: UInt64, _ body: (_ payload: UInt64) -> Void) -> Int {
        var fired = 0
        while let payload = popExpired(now: now) {
            body(payload)
            fired += 1
        }
        return fired
    }

    /// The earliest `now`, in milliseconds, at which `expire(now:)` has work: a timer to fire, or timers to move to a
    /// finer level. nil when the wheel is empty. It is never later than the earliest timer's firing time, so a
    /// worker may wait until it; it is that time exactly when the earliest timer is less than 64 ticks away, and
    /// otherwise the start of a coarser slot (waking there costs one cascade; the next value is finer). It may lie
    /// in the past: a timer scheduled with a delay that had already run out is due at once.
    public var nextDeadline: UInt64? {
        guard let (_, start) = earliestOccupiedSlot() else { return nil }
        let (milliseconds, overflow) = start.multipliedReportingOverflow(by: tickMilliseconds)
        return overflow ? .max : milliseconds
    }

    // MARK: - Slots

    /// The tick at which a timer scheduled at `now` with `delay` is due: the deadline rounded up to a tick, and
    /// never before the wheel's time (a deadline in an already processed tick is due at once).
    private func dueTick(now: UInt64, delay: UInt64) -> UInt64 {
        let (sum, overflow) = now.addingReportingOverflow(delay)
        let deadline = overflow ? UInt64.max : sum
        var tick = deadline / tickMilliseconds
        if tick * tickMilliseconds != deadline { tick += 1 }
        return min(max(tick, elapsed), Self.lastTick)
    }

    /// Puts node `index` at the front of the slot for its due tick, at the level of its distance from the wheel's
    /// time (never negative: due ticks are at least `elapsed`).
    private mutating func link(_ index: Int) {
        let deadline = nodes[index].deadline
        // The highest base-64 digit of the distance; `| 63` puts distances under 64 at level 0.
        let distance = (deadline - elapsed) | UInt64(Self.slotsPerLevel - 1)
        let level = (UInt64.bitWidth - 1 - distance.leadingZeroBitCount) / Int(Self.slotBits)
        let indexInLevel = Int(truncatingIfNeeded: deadline >> (UInt64(level) * Self.slotBits)) & (Self.slotsPerLevel - 1)
        let slot = level * Self.slotsPerLevel + indexInLevel
        let head = slotHeads[slot]
        nodes[index].slot = Int32(slot)
        nodes[index].previous = -1
        nodes[index].next = head
        if head >= 0 { nodes[Int(head)].previous = Int32(index) }
        slotHeads[slot] = Int32(index)
        occupiedSlots[level] |= 1 << UInt64(indexInLevel)
        occupiedLevels |= 1 << UInt16(level)
    }

    /// Takes node `index` out of its slot's list.
    private mutating func unlink(_ index: Int) {
        let node = nodes[index]
        if node.previous >= 0 {
            nodes[Int(node.previous)].next = node.next
        } else {
            slotHeads[Int(node.slot)] = node.next
            if node.next < 0 { markEmpty(Int(node.slot)) }
        }
        if node.next >= 0 { nodes[Int(node.next)].previous = node.previous }
    }

    /// Returns node `index` to the free list; its handles go stale.
    private mutating func release(_ index: Int) {
        nodes[index].generation &+= 1
        nodes[index].slot = -1
        nodes[index].next = freeHead
        freeHead = Int32(index)
        count -= 1
    }

    private mutating func markEmpty(_ slot: Int) {
        let level = slot / Self.slotsPerLevel
        occupiedSlots[level] &= ~(1 << UInt64(slot % Self.slotsPerLevel))
        if occupiedSlots[level] == 0 { occupiedLevels &= ~(1 << UInt16(level)) }
    }

    /// Moves every timer of `slot` (level ≥ 1, and time has reached its start) to the lower level where it now
    /// belongs: each lands strictly lower, since its deadline lies within the slot, less than one slot width ahead.
    private mutating func cascade(_ slot: Int) {
        var index = slotHeads[slot]
        slotHeads[slot] = -1
        markEmpty(slot)
        while index >= 0 {
            let next = nodes[Int(index)].next
            link(Int(index))
            index = next
        }
    }

    /// The occupied slot to process first, with its start tick: the earliest start (on a tie the higher level; either
    /// order keeps deadline order, since no slot holds a timer due before its start).
    ///
    /// Each level is a ring ahead of the wheel's time: the slots after the one holding `elapsed` start in the
    /// current turn of the level, the ones before it in the next turn. The slot holding `elapsed` is this turn's
    /// when `elapsed` is its very start (it is processed once time passes its start; at its start it may still wait,
    /// behind a coarser slot starting at the same tick) and the next turn's otherwise.
    private func earliestOccupiedSlot() -> (slot: Int, start: UInt64)? {
        var levels = occupiedLevels
        guard levels != 0 else { return nil }
        var earliest = (slot: 0, start: UInt64.max)
        while levels != 0 {
            let level = levels.trailingZeroBitCount
            levels &= levels - 1
            let occupied = occupiedSlots[level]
            let slotShift = UInt64(level) * Self.slotBits
            let turnShift = slotShift + Self.slotBits
            let currentIndex = Int(truncatingIfNeeded: elapsed >> slotShift) & (Self.slotsPerLevel - 1)
            let atSlotStart = elapsed & (1 << slotShift - 1) == 0
            let firstOfThisTurn = atSlotStart ? currentIndex : currentIndex + 1
            let thisTurn = firstOfThisTurn < Self.slotsPerLevel ? occupied & (~0 << UInt64(firstOfThisTurn)) : 0
            var turnStart = (elapsed >> turnShift) << turnShift
            let indexInLevel: Int
            if thisTurn != 0 {
                indexInLevel = thisTurn.trailingZeroBitCount
            } else {
                indexInLevel = occupied.trailingZeroBitCount
                turnStart += 1 << turnShift
            }
            let start = turnStart | UInt64(indexInLevel) << slotShift
            if start <= earliest.start { earliest = (level * Self.slotsPerLevel + indexInLevel, start) }
        }
        return earliest
    }
}
