public import SIPBytes

/// The configured upstreams with an up/down bit each, and the choice of one for a request.
///
/// The choice is weighted rendezvous hashing (highest random weight) within the lowest-numbered priority group
/// that has an upstream up. Rendezvous rather than a ring or a modulo: when an upstream goes down, only the keys
/// (Call-IDs) it had move, spread over the others in proportion to their weights, and they come back to it, and
/// only they, when it is up again; nothing else is disturbed, so dialogs and retransmissions keep their upstream.
/// Scores depend on the upstream's address, not its place in the list, so reordering the configuration moves no
/// keys either.
///
/// A pure value: the owner (a worker, from its health checks) flips the bits; time and I/O are elsewhere.
public struct UpstreamSet: Sendable, Equatable {
    /// One configured upstream.
    public struct Member: Sendable, Hashable {
        public var address: EndpointAddress
        /// Share of the group's keys, relative to the other members' weights. Positive.
        public var weight: Int
        /// Lower goes first: a group only receives traffic while every lower-numbered group is entirely down.
        public var priority: Int
        /// Gone from DNS: no new calls, but still an upstream for in-dialog requests that name it in their Route
        /// and for the responses and requests it sends us, until it has drained.
        public var isDraining: Bool

        public init(_ address: EndpointAddress, weight: Int = 1, priority: Int = 0, isDraining: Bool = false) {
            self.address = address
            self.weight = weight
            self.priority = priority
            self.isDraining = isDraining
        }
    }

    /// Members a set may have when shared between workers: the up bits travel in one 64-bit word with a 16-bit
    /// membership generation.
    public static let maximumMembers = 48

    /// The members in configured order; indices into this array name members in every other method.
    public let members: [Member]
    private var up: [Bool]
    /// The members ordered by priority (configured order within one), with what scoring needs at hand.
    private let slots: [Slot]
    /// One entry per priority group, lowest priority first: where the group ends in `slots`.
    private let groups: [Group]

    private struct Slot: Sendable, Equatable {
        var member: Int
        /// Mixed from the address alone, so a member's draws do not depend on the configured order.
        var salt: UInt64
        var weight: Double
        var isDraining: Bool
    }

    private struct Group: Sendable, Equatable {
        var end: Int
        /// Every member of the group has the same weight: the draws can be compared as integers, no logarithm.
        var equalWeights: Bool
    }

    /// All members start up (see ``UpstreamHealth`` for why optimistic). Weights must be positive.
    public init(_ members: [Member]) {
        precondition(members.allSatisfy { $0.weight > 0 }, "upstream weights must be positive")
        self.members = members
        up = Array(repeating: true, count: members.count)
        // Stable: configured order decides ties between equal draws, which are (2^-64) unlikely anyway.
        let ordered = members.indices.sorted { (members[$0].priority, $0) < (members[$1].priority, $1) }
        slots = ordered.map { Slot(member: $0, salt: Self.salt(of: members[$0].address),
                                   weight: Double(members[$0].weight), isDraining: members[$0].isDraining) }
        var groups: [Group] = []
        var start = 0
        while start < ordered.count {
            let priority = members[ordered[start]].priority
            var end = start
            while end < ordered.count, members[ordered[end]].priority == priority { end += 1 }
            let weight = members[ordered[start]].weight
            groups.append(Group(end: end, equalWeights: ordered[start..<end].allSatisfy { members[$0].weight == weight }))
            start = end
        }
        self.groups = groups
    }

    /// Equal weights, one priority group: the shape of a plain `--upstream` list.
    public init(addresses: [EndpointAddress]) {
        self.init(addresses.map { Member($0) })
    }

    public var count: Int { members.count }

    /// How many members are up.
    public var upCount: Int { up.count(where: { $0 }) }

    public func isUp(at index: Int) -> Bool { up[index] }

    /// The member with this exact address (and port), draining or not.
    public func index(of address: EndpointAddress) -> Int? {
        members.firstIndex { $0.address == address }
    }

    /// True when `address` is a member (draining ones included): its messages come from the core side.
    public func contains(_ address: EndpointAddress) -> Bool {
        for member in members where member.address == address { return true }
        return false
    }

    /// Member i is up when bit i is set (the shape a health monitor publishes, at most 64 members).
    public mutating func setUp(bits: UInt64) {
        for index in up.indices { up[index] = index < 64 && bits & (1 << UInt64(index)) != 0 }
    }

    /// Marks a member up or down; returns whether that changed its state.
    @discardableResult
    public mutating func setUp(_ isUp: Bool, at index: Int) -> Bool {
        guard up[index] != isUp else { return false }
        up[index] = isUp
        return true
    }

    /// The index of the member that gets requests with this key hash (a well mixed hash of the Call-ID), or nil
    /// when every member is down or draining. Allocation-free: it runs for every new request.
    ///
    /// Each (hash, member) pair draws a uniform u in (0, 1); the highest `weight / -ln(u)` wins, which gives each
    /// member a share proportional to its weight (it is the minimum of exponential variables with rates equal to
    /// the weights). In a group of equal weights that order is the order of u itself, so the raw 64-bit draws are
    /// compared and no logarithm is taken; otherwise `naturalLog` below, exact to a few ulps.
    public func pick(hash: UInt64) -> Int? {
        pick(hash: hash, excluding: 0)
    }

    /// The member ``pick(hash:)`` would choose if the members whose bits are set in `excluded` (bit i: member i)
    /// were down: the next upstream in this key's rendezvous order, for a transaction failing over after its
    /// first choice did not answer (RFC 3261 §16.7 serial forking). Nil when none is left.
    public func pick(hash: UInt64, excluding excluded: UInt64) -> Int? {
        var start = 0
        for group in groups {
            var best = -1
            var bestDraw: UInt64 = 0
            var bestScore = 0.0
            for position in start..<group.end {
                let slot = slots[position]
                guard up[slot.member], !slot.isDraining,
                    slot.member >= 64 || excluded & (1 << UInt64(slot.member)) == 0 else { continue }
                let draw = mix(hash ^ slot.salt)
                if group.equalWeights {
                    if best < 0 || draw > bestDraw {
                        best = slot.member
                        bestDraw = draw
                    }
                } else {
                    let score = slot.weight / -naturalLog(unitInterval(draw))
                    if best < 0 || score > bestScore {
                        best = slot.member
                        bestScore = score
                    }
                }
            }
            if best >= 0 { return best }
            start = group.end
        }
        return nil
    }

    /// The address of the member ``pick(hash:)`` chooses.
    public func pickAddress(hash: UInt64) -> EndpointAddress? {
        pick(hash: hash).map { members[$0].address }
    }

    /// Mixes every field of the address, chained, so addresses differing anywhere get unrelated salts (a plain XOR
    /// of the fields would let some IPv6 address and port pairs cancel out).
    private static func salt(of address: EndpointAddress) -> UInt64 {
        var salt = mix(UInt64(address.port) | UInt64(address.family.rawValue) << 16)
        salt = mix(salt ^ address.high)
        return mix(salt ^ address.low)
    }
}

/// The top 53 bits of `draw` as a Double strictly inside (0, 1): the half-step offset keeps both ends out, so the
/// logarithm is finite and negative.
func unitInterval(_ draw: UInt64) -> Double {
    (Double(draw >> 11) + 0.5) * 0x1p-53
}

/// The natural logarithm of a positive, finite, normal x, in plain Swift so this pure module imports no libm:
/// x = m · 2^e with m in [√½, √2), ln x = e·ln 2 + 2·atanh(s), s = (m − 1)/(m + 1), |s| ≤ 0.172, whose odd series
/// to s^19 leaves an error below 1e-17. One division and a dozen multiply-adds: cheaper than a libm call.
func naturalLog(_ x: Double) -> Double {
    var exponent = Double(x.exponent)
    var m = x.significand
    if m > 1.414_213_562_373_095_1 {
        m *= 0.5
        exponent += 1
    }
    let s = (m - 1) / (m + 1)
    let s2 = s * s
    // 1 + s²/3 + s⁴/5 + … + s¹⁸/19, by Horner (the constant quotients fold at compile time).
    var series = 1.0 / 19
    series = series * s2 + 1.0 / 17
    series = series * s2 + 1.0 / 15
    series = series * s2 + 1.0 / 13
    series = series * s2 + 1.0 / 11
    series = series * s2 + 1.0 / 9
    series = series * s2 + 1.0 / 7
    series = series * s2 + 1.0 / 5
    series = series * s2 + 1.0 / 3
    series = series * s2 + 1
    return exponent * 0.693_147_180_559_945_309_417_232_121_458 + 2 * s * series
}
