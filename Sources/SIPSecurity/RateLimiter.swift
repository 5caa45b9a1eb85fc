public import SIPBytes

/// Rate-limit settings, per worker (a client IP always reaches the same worker, so per-worker limits are per-IP).
public struct RateLimitConfiguration: Sendable, Equatable {
    public var enabled = true
    /// Window length in milliseconds. Default: 1,000.
    public var windowMilliseconds: UInt64 = 1_000
    /// Requests (other than REGISTER) per window per source. Default: 200.
    public var requestsPerWindow: UInt32 = 200
    /// REGISTERs per window per source: registration floods are the classic attack. Default: 20.
    public var registersPerWindow: UInt32 = 20
    /// Sources tracked per worker; beyond this the least recently seen is forgotten, so a spoofed-source flood
    /// cannot exhaust memory. Default: 65,536 (the table holds twice that many slots of 56 bytes: 7 MiB per worker).
    public var tableSize: Int = 65_536
    /// A source whose rate reaches this many times its limit is banned. Default: 3.
    public var banMultiplier: UInt32 = 3
    /// The first ban of a source, in milliseconds (`rate_limit.ban_ms`). Short by default, because a source is
    /// often a NAT with honest phones behind the one flooding device: a short first ban stops the flood's effect
    /// and lets the office back in seconds after it stops. 0: never banned (over the limit is only 503). Default:
    /// 5,000.
    public var banMilliseconds: UInt64 = 5_000
    /// A source banned again within this long after its previous ban ended gets twice that ban (escalation);
    /// after a quiet spell this long, the next ban starts over at ``banMilliseconds``. Default: 600,000.
    public var banMemoryMilliseconds: UInt64 = 600_000
    /// The longest ban escalation reaches. Default: 300,000.
    public var banMaxMilliseconds: UInt64 = 300_000
    /// Retry-After, in seconds, on 503 answers. Default: 5.
    public var retryAfterSeconds: UInt32 = 5
    /// Never limited: the upstream core and other trusted peers (upstreams are always added).
    public var allowList: [AddressPrefix] = []

    public init() {}

    /// The length of ban `step` (1: a first offence): ``banMilliseconds`` doubled at each step, at most
    /// ``banMaxMilliseconds``.
    public func banDuration(step: Int) -> UInt64 {
        let doublings = UInt64(max(step, 1) - 1)
        // banMilliseconds is below 2^27 (config allows a day), so 31 doublings cannot overflow; more are the cap.
        guard doublings < 32 else { return min(banMaxMilliseconds, banMilliseconds == 0 ? 0 : .max) }
        return min(banMilliseconds << doublings, banMaxMilliseconds)
    }
}

/// An IPv4 or IPv6 prefix (CIDR), for allow lists.
public struct AddressPrefix: Sendable, Equatable, CustomStringConvertible {
    public let address: EndpointAddress
    public let length: Int

    /// Parses "192.0.2.0/24", "2001:db8::/32" or a bare address (a host prefix).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let address = EndpointAddress.parse(String(parts[0]), port: 0) else { return nil }
        let maximum = address.family == .ipv4 ? 32 : 128
        if parts.count == 2 {
            guard let length = Int(parts[1]), (0...maximum).contains(length) else { return nil }
            self.length = length
        } else {
            self.length = maximum
        }
        self.address = address
    }

    /// The prefix holding exactly `host`.
    public init(host: EndpointAddress) {
        address = host
        length = host.family == .ipv4 ? 32 : 128
    }

    public func contains(_ other: EndpointAddress) -> Bool {
        guard other.family == address.family else { return false }
        if address.family == .ipv4 {
            let mask: UInt64 = length == 0 ? 0 : (~UInt64(0) << UInt64(64 - length))
            return (other.high & mask) == (address.high & mask)
        }
        let highBits = min(length, 64)
        let lowBits = max(length - 64, 0)
        let highMask: UInt64 = highBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - highBits)
        let lowMask: UInt64 = lowBits == 0 ? 0 : ~UInt64(0) << UInt64(64 - lowBits)
        return (other.high & highMask) == (address.high & highMask) && (other.low & lowMask) == (address.low & lowMask)
    }

    public var description: String {
        var text: [UInt8] = []
        address.appendHost(to: &text)
        return String(decoding: text, as: UTF8.self) + "/\(length)"
    }
}

/// Sliding-window rate limiter with temporary bans, in a fixed-size table (Pingora's previous/current window
/// interpolation). One per worker; the clock is passed in (milliseconds, monotonic). No allocation after init.
///
/// Bans escalate: a source's first ban is short (``RateLimitConfiguration/banMilliseconds``), and each ban that
/// starts within ``RateLimitConfiguration/banMemoryMilliseconds`` of the previous one's end doubles it, up to
/// ``RateLimitConfiguration/banMaxMilliseconds``. A NATed office whose one device floods once is locked out for
/// seconds, not a minute; a source that keeps coming back is kept out longer each time.
public struct RateLimiter {
    /// What the limiter decided for one request.
    public enum Decision: Equatable, Sendable {
        case allow
        /// Over the limit: answer 503 with Retry-After (or drop, per policy).
        case limited
        /// Banned: drop without answer until the ban ends. `step`: which ban of the escalation this is (1: the
        /// source's first ban, or its first after a quiet spell), its length
        /// ``RateLimitConfiguration/banDuration(step:)``.
        case banned(step: Int)
    }

    struct Entry {
        var keyHigh: UInt64 = 0
        var keyLow: UInt64 = 0
        var windowStart: UInt64 = 0
        var current: UInt32 = 0
        var previous: UInt32 = 0
        var bannedUntil: UInt64 = 0
        var lastSeen: UInt64 = 0
        var used = false
        /// The escalation step of the last ban (0: never banned); kept after the ban ends, with `bannedUntil`, so
        /// a repeat within the memory escalates. Fits the padding after `used`: the entry stays 56 bytes.
        var banStep: UInt8 = 0
        /// Limited by the edges together (shared rate limits) until then, whatever this edge counts.
        var sharedLimitUntil: UInt64 = 0
    }

    /// One source's requests in the current sharing interval (REGISTERs and the rest together).
    public struct SourceCount: Equatable, Sendable {
        public var keyHigh: UInt64
        public var isIPv6: Bool
        public var count: Int

        public init(keyHigh: UInt64, isIPv6: Bool, count: Int) {
            self.keyHigh = keyHigh
            self.isIPv6 = isIPv6
            self.count = count
        }
    }

    /// A ban this limiter started on a source (not a flow), for sharing with other edges: the source's key
    /// (IPv4 address or IPv6 /64 in the high word), how long, which escalation step.
    public struct StartedBan: Equatable, Sendable {
        public var keyHigh: UInt64
        public var isIPv6: Bool
        public var milliseconds: UInt64
        public var step: Int

        public init(keyHigh: UInt64, isIPv6: Bool, milliseconds: UInt64, step: Int) {
            self.keyHigh = keyHigh
            self.isIPv6 = isIPv6
            self.milliseconds = milliseconds
            self.step = step
        }
    }

    public let configuration: RateLimitConfiguration
    /// Requests per source in the current sharing interval, for the busiest-sources report (nil: not shared).
    /// A fixed table: when its probe window is full, the smallest count there gives way (a space-saving count,
    /// which keeps every heavy source).
    private var intervalKeys: [UInt64]
    private var intervalCounts: [UInt32]
    private var intervalIsIPv6: [Bool]

    /// Bans started since the last ``takeStartedBans()`` (at most 256 kept: a spoofed-source storm cannot grow it).
    public private(set) var startedBans: [StartedBan] = []
    private var entries: [Entry]
    private let mask: Int
    /// Sources forgotten to make room (a sign of a spoofed-source flood or a too-small table).
    public private(set) var evictions = 0

    public init(configuration: RateLimitConfiguration) {
        self.configuration = configuration
        var size = 16
        while size < configuration.tableSize * 2 { size <<= 1 }  // at most half full before eviction kicks in
        entries = [Entry](repeating: Entry(), count: size)
        mask = size - 1
        intervalKeys = [UInt64](repeating: 0, count: Self.intervalSlots)
        intervalCounts = [UInt32](repeating: 0, count: Self.intervalSlots)
        intervalIsIPv6 = [Bool](repeating: false, count: Self.intervalSlots)
    }

    static let intervalSlots = 2_048
    /// Count requests per source for ``takeBusiestSources(limit:)`` (on when edges share rate limits).
    public var countsSources = false

    /// Counts one request from `source` (IPv6 grouped by /64) of kind `isRegister`, at `now` milliseconds.
    public mutating func check(_ source: EndpointAddress, isRegister: Bool, now: UInt64) -> Decision {
        guard configuration.enabled else { return .allow }
        // IPv6 clients get a /64 each: counting single addresses would let one host rotate through 2^64 of them.
        let keyLow: UInt64 = (source.family == .ipv6 ? 0 : 1) | (isRegister ? 2 : 0)
        return count(keyHigh: source.high, keyLow: keyLow, isRegister: isRegister, now: now)
    }

    /// Counts one request of one flow (`source` with its port) on its own, apart from its source's count: for a
    /// flow the pipeline lets through its source's ban because it proved it is an established client (a flow
    /// token bound to it). Same limits and escalation, so such a flow that floods is limited and banned itself.
    public mutating func checkFlow(_ source: EndpointAddress, isRegister: Bool, now: UInt64) -> Decision {
        guard configuration.enabled else { return .allow }
        // Bit 2 keeps flow keys apart from source keys; the port (and for IPv6 the interface half, folded in)
        // above the flag bits. Two IPv6 flows of one /64 may share a key: they are one source anyway.
        let folded = source.family == .ipv6 ? source.low ^ (source.low >> 29) : 0
        let keyLow: UInt64 = (folded ^ UInt64(source.port)) << 3 | 4 | (source.family == .ipv6 ? 0 : 1)
            | (isRegister ? 2 : 0)
        return count(keyHigh: source.high, keyLow: keyLow, isRegister: isRegister, now: now)
    }

    private mutating func count(keyHigh: UInt64, keyLow: UInt64, isRegister: Bool, now: UInt64) -> Decision {
        let slot = findSlot(keyHigh: keyHigh, keyLow: keyLow, now: now)
        var entry = entries[slot]
        entry.lastSeen = now
        if countsSources && keyLow & 4 == 0 { tally(keyHigh: keyHigh, isIPv6: keyLow & 1 == 0) }
        if entry.sharedLimitUntil > now && entry.bannedUntil <= now {
            entries[slot] = entry
            return .limited
        }
        if entry.bannedUntil > now {
            // Requests during a ban are not counted: the ban ends when it was due, however long the flood goes
            // on, and a flood still going then is banned again at the next step.
            entries[slot] = entry
            return .banned(step: Int(entry.banStep))
        }
        let window = configuration.windowMilliseconds
        if now >= entry.windowStart + window {
            // Roll the window; a gap of two windows or more forgets the past.
            entry.previous = now >= entry.windowStart + 2 * window ? 0 : entry.current
            entry.current = 0
            entry.windowStart = now - (now - entry.windowStart) % window
        }
        entry.current &+= 1
        let elapsed = now - entry.windowStart
        let weight = Double(window - elapsed) / Double(window)
        let estimate = Double(entry.previous) * weight + Double(entry.current)
        let limit = Double(isRegister ? configuration.registersPerWindow : configuration.requestsPerWindow)
        var decision = Decision.allow
        if estimate > limit * Double(configuration.banMultiplier) {
            // A repeat offence escalates when it starts within the memory of the previous ban's end.
            let repeats = entry.banStep > 0 && now < entry.bannedUntil &+ configuration.banMemoryMilliseconds
            entry.banStep = repeats ? (entry.banStep == .max ? .max : entry.banStep + 1) : 1
            entry.bannedUntil = now + configuration.banDuration(step: Int(entry.banStep))
            // The window starts over: the ban, not the flood's old count, decides what happens when it ends.
            entry.current = 0
            entry.previous = 0
            decision = .banned(step: Int(entry.banStep))
            if keyLow & 4 == 0 && startedBans.count < 256 {
                startedBans.append(StartedBan(keyHigh: keyHigh, isIPv6: keyLow & 1 == 0,
                                              milliseconds: configuration.banDuration(step: Int(entry.banStep)),
                                              step: Int(entry.banStep)))
            }
        } else if estimate > limit {
            decision = .limited
        }
        entries[slot] = entry
        return decision
    }

    /// Counts a request of a source (not a flow) for this interval's report.
    private mutating func tally(keyHigh: UInt64, isIPv6: Bool) {
        let key = keyHigh
        var hash = (key ^ (isIPv6 ? 0x5555 : 0)) &* 0x9E37_79B9_7F4A_7C15
        hash ^= hash >> 29
        let start = Int(truncatingIfNeeded: hash) & (Self.intervalSlots - 1)
        var smallest = start
        for probe in 0..<8 {
            let slot = (start + probe) & (Self.intervalSlots - 1)
            if (intervalKeys[slot] == key && intervalIsIPv6[slot] == isIPv6) || intervalCounts[slot] == 0 {
                intervalKeys[slot] = key
                intervalIsIPv6[slot] = isIPv6
                intervalCounts[slot] &+= 1
                return
            }
            if intervalCounts[slot] < intervalCounts[smallest] { smallest = slot }
        }
        intervalKeys[smallest] = key
        intervalIsIPv6[smallest] = isIPv6
        intervalCounts[smallest] &+= 1
    }

    /// The `limit` busiest sources of the interval now ending, and a fresh interval.
    public mutating func takeBusiestSources(limit: Int) -> [SourceCount] {
        var counted: [SourceCount] = []
        for slot in 0..<Self.intervalSlots where intervalCounts[slot] > 0 {
            counted.append(SourceCount(keyHigh: intervalKeys[slot], isIPv6: intervalIsIPv6[slot],
                                       count: Int(intervalCounts[slot])))
            intervalCounts[slot] = 0
        }
        counted.sort { $0.count > $1.count }
        return Array(counted.prefix(limit))
    }

    /// The edges together saw more from this source than the limit allows: its requests are limited (503, or
    /// dropped per policy) here until `milliseconds` from `now`, whatever this edge counted.
    public mutating func limitShared(_ source: SourceCount, for milliseconds: UInt64, now: UInt64) {
        updateSource(keyHigh: source.keyHigh, isIPv6: source.isIPv6, now: now) { entry in
            entry.sharedLimitUntil = now + milliseconds
        }
    }

    /// Applies `change` to a source's two entries (REGISTERs and the rest), as a decision made elsewhere.
    private mutating func updateSource(keyHigh: UInt64, isIPv6: Bool, now: UInt64, _ change: (inout Entry) -> Void) {
        guard configuration.enabled else { return }
        let family: UInt64 = isIPv6 ? 0 : 1
        for keyLow in [family, family | 2] {
            let slot = findSlot(keyHigh: keyHigh, keyLow: keyLow, now: now)
            entries[slot].lastSeen = now
            change(&entries[slot])
        }
    }

    public mutating func takeStartedBans() -> [StartedBan] {
        defer { startedBans.removeAll(keepingCapacity: true) }
        return startedBans
    }

    /// Bans a source another edge banned, for REGISTERs and other requests alike, from `now` for the ban's
    /// length (never shortening a longer ban in force). Not announced again.
    public mutating func impose(_ ban: StartedBan, now: UInt64) {
        updateSource(keyHigh: ban.keyHigh, isIPv6: ban.isIPv6, now: now) { entry in
            entry.bannedUntil = max(entry.bannedUntil, now + ban.milliseconds)
            entry.banStep = max(entry.banStep, UInt8(clamping: ban.step))
        }
    }

    /// The slot for a key: its own, a free one, or (when the probe window is full) the least recently seen.
    private mutating func findSlot(keyHigh: UInt64, keyLow: UInt64, now: UInt64) -> Int {
        var hash = (keyHigh ^ (keyLow &* 0x9E37_79B9_7F4A_7C15)) &* 0xBF58_476D_1CE4_E5B9
        hash ^= hash >> 31
        let start = Int(truncatingIfNeeded: hash) & mask
        var oldest = start
        for probe in 0..<16 {
            let slot = (start + probe) & mask
            let entry = entries[slot]
            if !entry.used {
                entries[slot] = Entry(keyHigh: keyHigh, keyLow: keyLow, windowStart: now, used: true)
                return slot
            }
            if entry.keyHigh == keyHigh && entry.keyLow == keyLow { return slot }
            if entry.lastSeen < entries[oldest].lastSeen { oldest = slot }
        }
        evictions += 1
        entries[oldest] = Entry(keyHigh: keyHigh, keyLow: keyLow, windowStart: now, used: true)
        return oldest
    }

    /// Number of sources currently tracked (for tests and metrics; walks the table).
    public var trackedSources: Int { entries.reduce(0) { $0 + ($1.used ? 1 : 0) } }
}
