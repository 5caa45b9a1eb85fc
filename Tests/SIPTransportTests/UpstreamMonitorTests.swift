import SIPBytes
import SIPProxyCore
import SIPSettings
import SIPMetrics
@testable import SIPTransport
import Testing

private let a = EndpointAddress.parse("10.0.0.1", port: 5060)!
private let b = EndpointAddress.parse("10.0.0.2", port: 5060)!
private let c = EndpointAddress.parse("10.0.0.3", port: 5060)!

private func monitor(_ addresses: [EndpointAddress] = [a, b]) -> (UpstreamMonitor, UpstreamBoard) {
    let board = UpstreamBoard(members: addresses.map { UpstreamSet.Member($0) })
    var monitor = UpstreamMonitor(settings: UpstreamHealthSettings(), nonce: 0xAB)
    let (membership, word) = board.membershipAndWord()
    monitor.adopt(membership, upBits: word & UpstreamBoard.upMask)
    return (monitor, board)
}

/// Health checks as worker 0 runs them: rounds each interval, answers, silences, passive failures.
@Suite struct UpstreamMonitorTests {
    @Test func aSilentUpstreamIsDownAfterThreeRoundsAndBackAfterTwoAnswers() {
        var (monitor, _) = monitor()
        var changes: [(EndpointAddress, Bool)] = []
        var now: UInt64 = 0
        // Rounds at 0, 1000, 2000, 3000 ms: b answers, a never does; a's third unanswered probe is judged at 3000.
        for round in 0..<4 {
            let probes = monitor.startRoundIfDue(now: now, changes: &changes)
            #expect(probes.map(\.address) == [a, b])
            #expect(monitor.startRoundIfDue(now: now + 500, changes: &changes).isEmpty, "one round per interval")
            monitor.answered(callID: probes[1].callID, status: 200, changes: &changes)
            #expect(changes.isEmpty == (round < 3))
            now += 1_000
        }
        #expect(changes.map(\.0) == [a])
        #expect(changes.map(\.1) == [false])
        #expect(monitor.upBits == 0b10)
        changes.removeAll()
        for _ in 0..<2 {
            let probes = monitor.startRoundIfDue(now: now, changes: &changes)
            monitor.answered(callID: probes[0].callID, status: 404, changes: &changes)  // alive, if unhelpful
            monitor.answered(callID: probes[1].callID, status: 200, changes: &changes)
            now += 1_000
        }
        #expect(changes.map(\.0) == [a])
        #expect(changes.map(\.1) == [true])
        #expect(monitor.upBits == 0b11)
    }

    @Test func a503IsAFailureAndAProvisionalIsNoAnswerYet() {
        var (monitor, _) = monitor([a])
        var changes: [(EndpointAddress, Bool)] = []
        for round in 0..<3 {
            let probe = monitor.startRoundIfDue(now: UInt64(round) * 1_000, changes: &changes)[0]
            monitor.answered(callID: probe.callID, status: 100, changes: &changes)
            monitor.answered(callID: probe.callID, status: 503, changes: &changes)
            monitor.answered(callID: probe.callID, status: 200, changes: &changes)  // a late duplicate: ignored
        }
        #expect(changes.map(\.1) == [false])
        #expect(!monitor.isReady)
    }

    @Test func passiveFailuresCountAtOnceAndJudgeTheProbeInFlight() {
        var (monitor, _) = monitor([a, b])
        var changes: [(EndpointAddress, Bool)] = []
        _ = monitor.startRoundIfDue(now: 0, changes: &changes)
        monitor.failed(a, changes: &changes)
        monitor.failed(a, changes: &changes)
        #expect(changes.isEmpty)
        // The probe in flight was judged by the first failure: the next round adds nothing for it.
        _ = monitor.startRoundIfDue(now: 1_000, changes: &changes)
        #expect(changes.isEmpty)
        monitor.failed(a, changes: &changes)
        #expect(changes.map(\.0) == [a])
        monitor.failed(c, changes: &changes)  // not a member: ignored
        #expect(changes.count == 1)
    }

    @Test func readinessWaitsForARealAnswer() {
        var (monitor, _) = monitor([a])
        var changes: [(EndpointAddress, Bool)] = []
        #expect(monitor.upBits == 1)
        #expect(!monitor.isReady, "up optimistically, but nothing has answered yet")
        let probe = monitor.startRoundIfDue(now: 0, changes: &changes)[0]
        #expect(probe.callID.hasPrefix("sip-edge-probe-ab-"))
        monitor.answered(callID: probe.callID, status: 200, changes: &changes)
        #expect(monitor.isReady)
    }

    @Test func aNewMembershipKeepsTheHealthOfMembersThatStay() {
        var (monitor, board) = monitor([a, b])
        var changes: [(EndpointAddress, Bool)] = []
        for round in 0..<3 { _ = monitor.startRoundIfDue(now: UInt64(round) * 1_000, changes: &changes) }
        _ = monitor.startRoundIfDue(now: 3_000, changes: &changes)
        #expect(monitor.upBits == 0)
        board.publish(bits: monitor.upBits, generation: monitor.generation, changes: changes, ready: false)
        board.resolved([UpstreamSet.Member(c), UpstreamSet.Member(b)], now: 0)
        let (membership, word) = board.membershipAndWord()
        monitor.adopt(membership, upBits: word & UpstreamBoard.upMask)
        // c (new) starts up, b stays down, a drains (no longer resolved) and keeps its down state.
        #expect(membership.members.map(\.address) == [c, b, a])
        #expect(membership.members.map(\.isDraining) == [false, false, true])
        #expect(monitor.upBits == 0b001)
    }
}

/// The board every worker reads: one word per loop turn, members and drains from DNS.
@Suite struct UpstreamBoardTests {
    @Test func theWordCarriesTheGenerationAndAStalePublishIsIgnored() {
        let board = UpstreamBoard(members: [UpstreamSet.Member(a), UpstreamSet.Member(b)])
        #expect(board.stateWord == 1 << 48 | 0b11)
        board.publish(bits: 0b01, generation: 1, changes: [(b, false)], ready: true)
        #expect(board.stateWord == 1 << 48 | 0b01)
        #expect(board.report.ready)
        #expect(board.report.upstreams.map(\.becameDown) == [0, 1])
        #expect(board.resolved([UpstreamSet.Member(b), UpstreamSet.Member(a)], now: 0))
        // Same members in a new order: generation 2, bits follow the members (a up, b down).
        #expect(board.stateWord == 2 << 48 | 0b10)
        board.publish(bits: 0, generation: 1, changes: [], ready: false)
        #expect(board.stateWord == 2 << 48 | 0b10, "a verdict for an old membership is dropped")
        #expect(!board.resolved([UpstreamSet.Member(b), UpstreamSet.Member(a)], now: 10), "no change, no new generation")
    }

    @Test func aVanishedAddressDrainsThenLeavesAndComesBackFresh() {
        let board = UpstreamBoard(members: [UpstreamSet.Member(a), UpstreamSet.Member(b)], drainMilliseconds: 60_000)
        board.resolved([UpstreamSet.Member(a)], now: 1_000)
        var set = UpstreamSet(board.membership.members)
        #expect(set.members.map(\.isDraining) == [false, true])
        // Draining: still an upstream (its responses and in-dialog requests), never picked for new calls.
        #expect(set.contains(b))
        for hash in 0..<UInt64(1_000) { #expect(set.pick(hash: hash &* 0x9E37_79B9_7F4A_7C15) == 0) }
        set.setUp(false, at: 0)
        #expect(set.pick(hash: 1) == nil, "a draining member is no fallback for new calls")
        board.expireDrained(now: 60_999)
        #expect(board.membership.members.count == 2)
        board.expireDrained(now: 61_000)
        #expect(board.membership.members.map(\.address) == [a])
        #expect(board.report.upstreams.first { $0.upstream == b.description }?.isMember == false)
        board.resolved([UpstreamSet.Member(a), UpstreamSet.Member(b)], now: 62_000)
        #expect(board.membership.members.map(\.isDraining) == [false, false])
    }

    @Test func passiveFailuresAreTakenOnce() {
        let board = UpstreamBoard(members: [UpstreamSet.Member(a)])
        #expect(board.takeFailures().isEmpty)
        board.reportFailure(a)
        board.reportFailure(a)
        #expect(board.takeFailures() == [a, a])
        #expect(board.takeFailures().isEmpty)
    }
}
