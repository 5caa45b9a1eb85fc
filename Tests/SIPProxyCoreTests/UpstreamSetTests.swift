import Foundation
import SIPBytes
@testable import SIPProxyCore
import Testing

/// Key hashes the way the proxy makes them: FNV-1a over the Call-ID, then the splitmix64 avalanche.
private func callIDHash(_ callID: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in callID.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return mix(hash)
}

private func keys(_ count: Int) -> [UInt64] {
    (0..<count).map { callIDHash("a84b4c76e66710-\($0)@pc33.atlanta.example.com") }
}

private func address(_ last: Int, port: UInt16 = 5060) -> EndpointAddress {
    EndpointAddress.parse("10.0.0.\(last)", port: port)!
}

/// How many of `keys` each member gets.
private func shares(_ set: UpstreamSet, _ keys: [UInt64]) -> [Int] {
    var counts = Array(repeating: 0, count: set.count)
    for key in keys { counts[set.pick(hash: key)!] += 1 }
    return counts
}

@Suite("UpstreamSet: weighted rendezvous hashing over priority groups")
struct UpstreamSetTests {
    @Test("excluding the members a request already tried gives the choice the set would make with them down")
    func excludingTriedMembersFollowsTheRendezvousOrder() {
        let set = UpstreamSet([UpstreamSet.Member(address(1)), UpstreamSet.Member(address(2), weight: 2),
                               UpstreamSet.Member(address(3)), UpstreamSet.Member(address(4), priority: 1)])
        for key in keys(2_000) {
            let first = set.pick(hash: key)!
            var without = set
            without.setUp(false, at: first)
            let second = set.pick(hash: key, excluding: 1 << UInt64(first))!
            #expect(second == without.pick(hash: key))
            #expect(second != first)
            without.setUp(false, at: second)
            let third = set.pick(hash: key, excluding: 1 << UInt64(first) | 1 << UInt64(second))
            #expect(third == without.pick(hash: key))
        }
        // Every primary tried: the backup group; everything tried: nothing.
        #expect(set.pick(hash: 42, excluding: 0b0111) == 3)
        #expect(set.pick(hash: 42, excluding: 0b1111) == nil)
    }

    @Test("a member going down moves exactly its keys, evenly over the others, and they all come back")
    func downMovesOnlyItsKeys() {
        var set = UpstreamSet(addresses: (1...4).map { address($0) })
        let keys = keys(10_000)
        let before = keys.map { set.pick(hash: $0)! }
        let down = 2
        #expect(set.setUp(false, at: down) == true)
        let after = keys.map { set.pick(hash: $0)! }

        var movedTo = [0, 0, 0, 0]
        for (old, new) in zip(before, after) {
            if old == down {
                #expect(new != down)
                movedTo[new] += 1
            } else {
                #expect(new == old, "a key not on the down member moved")
            }
        }
        let moved = before.count(where: { $0 == down })
        #expect(moved > 2_000 && moved < 3_000, "the down member had about a quarter: \(moved)")
        for member in [0, 1, 3] {
            let third = Double(moved) / 3
            #expect(abs(Double(movedTo[member]) - third) <= third * 0.10, "member \(member) took \(movedTo[member]) of \(moved)")
        }

        #expect(set.setUp(true, at: down) == true)
        #expect(keys.map { set.pick(hash: $0)! } == before)
    }

    @Test("weights 1, 2, 3, 4 take shares within 5% of weight / 10")
    func weightedShares() {
        let set = UpstreamSet((1...4).map { UpstreamSet.Member(address($0), weight: $0) })
        let keys = keys(100_000)
        let counts = shares(set, keys)
        for (member, count) in counts.enumerated() {
            let expected = Double(keys.count) * Double(member + 1) / 10
            #expect(abs(Double(count) - expected) <= expected * 0.05, "weight \(member + 1): \(count), expected \(expected)")
        }
    }

    @Test("with weights, a member going down still moves only its keys, in proportion to the others' weights")
    func weightedDownMovesOnlyItsKeys() {
        var set = UpstreamSet((1...4).map { UpstreamSet.Member(address($0), weight: $0) })
        let keys = keys(100_000)
        let before = keys.map { set.pick(hash: $0)! }
        set.setUp(false, at: 3)  // weight 4
        var movedTo = [0, 0, 0, 0]
        for (key, old) in zip(keys, before) {
            let new = set.pick(hash: key)!
            if old == 3 { movedTo[new] += 1 } else { #expect(new == old) }
        }
        let moved = Double(movedTo.reduce(0, +))
        for member in 0..<3 {
            let expected = moved * Double(member + 1) / 6
            #expect(abs(Double(movedTo[member]) - expected) <= expected * 0.05, "weight \(member + 1): \(movedTo[member])")
        }
        #expect(movedTo[3] == 0)
    }

    @Test("a backup group gets nothing while a primary is up, everything when all are down, and gives keys back")
    func priorityGroups() {
        var set = UpstreamSet([
            UpstreamSet.Member(address(1)),
            UpstreamSet.Member(address(2)),
            UpstreamSet.Member(address(9), priority: 1),
        ])
        let keys = keys(10_000)
        let before = keys.map { set.pick(hash: $0)! }
        #expect(!before.contains(2), "the backup got traffic while both primaries were up")

        set.setUp(false, at: 0)
        #expect(keys.allSatisfy { set.pick(hash: $0) == 1 }, "the backup got traffic while a primary was up")

        set.setUp(false, at: 1)
        #expect(keys.allSatisfy { set.pick(hash: $0) == 2 })
        #expect(keys.allSatisfy { set.pickAddress(hash: $0) == address(9) })

        set.setUp(true, at: 0)
        #expect(keys.allSatisfy { set.pick(hash: $0) == 0 }, "keys stayed on the backup after a primary came back")

        set.setUp(true, at: 1)
        #expect(keys.map { set.pick(hash: $0)! } == before)
    }

    @Test("a group's priority number, not its place in the list, decides; unused gaps are fine")
    func priorityOrderIsNumeric() {
        var set = UpstreamSet([
            UpstreamSet.Member(address(7), priority: 10),
            UpstreamSet.Member(address(1), priority: -5),
            UpstreamSet.Member(address(3), priority: 2),
        ])
        #expect(set.pick(hash: 42) == 1)
        set.setUp(false, at: 1)
        #expect(set.pick(hash: 42) == 2)
        set.setUp(false, at: 2)
        #expect(set.pick(hash: 42) == 0)
    }

    @Test("none up, or none configured: nil")
    func noneUp() {
        var set = UpstreamSet([UpstreamSet.Member(address(1)), UpstreamSet.Member(address(2), priority: 1)])
        set.setUp(false, at: 0)
        set.setUp(false, at: 1)
        #expect(set.upCount == 0)
        #expect(set.pick(hash: 1) == nil)
        #expect(set.pickAddress(hash: 1) == nil)
        #expect(UpstreamSet(addresses: []).pick(hash: 1) == nil)
    }

    @Test("setUp reports only changes")
    func setUpReportsChanges() {
        var set = UpstreamSet(addresses: [address(1)])
        #expect(set.isUp(at: 0))
        #expect(set.setUp(true, at: 0) == false)
        #expect(set.setUp(false, at: 0) == true)
        #expect(set.setUp(false, at: 0) == false)
        #expect(!set.isUp(at: 0))
    }

    @Test("the choice follows addresses, not their order in the configuration")
    func orderIndependent() {
        let members = (1...5).map { UpstreamSet.Member(address($0), weight: $0 % 3 + 1) }
        let forward = UpstreamSet(members)
        let reversed = UpstreamSet(members.reversed())
        for key in keys(2_000) {
            #expect(forward.pickAddress(hash: key) == reversed.pickAddress(hash: key))
        }
    }

    @Test("members on one host that differ only by port share the keys evenly")
    func portsOfOneHost() {
        let set = UpstreamSet(addresses: [address(1, port: 5060), address(1, port: 5062), address(1, port: 5064)])
        for count in shares(set, keys(30_000)) {
            #expect(abs(count - 10_000) <= 500, "\(count)")
        }
    }

    @Test("naturalLog agrees with libm across (0, 1)")
    func naturalLogMatchesLibm() {
        var draw: UInt64 = 1
        for _ in 0..<10_000 {
            draw = mix(draw)
            let x = unitInterval(draw)
            #expect(x > 0 && x < 1)
            #expect(abs(naturalLog(x) - Foundation.log(x)) <= 4 * abs(Foundation.log(x)).ulp)
        }
        for x in [0x1p-54, 0x1p-53, 0.5, 0.7071067811865476, 0.7071067811865475, 1 - 0x1p-53] {
            #expect(abs(naturalLog(x) - Foundation.log(x)) <= 4 * abs(Foundation.log(x)).ulp, "\(x)")
        }
    }
}
