import SIPTransactions
import Testing

private let timers = TransactionTimers()
private typealias Machine = TransactionMachine

private func start(_ timer: TransactionTimer, _ ms: UInt64) -> Machine.TimerStart {
    Machine.TimerStart(timer: timer, afterMilliseconds: ms)
}

/// RFC 3261 §17 (and RFC 6026) state by state, over UDP unless said otherwise.
@Suite struct TransactionMachineTests {
    @Test func clientInviteRetransmitsWithDoublingUntilAProvisionalThenTimesOutOnlyWithout() {
        var (machine, first) = Machine.start(.inviteClient, reliable: false, timers: timers)
        #expect(first.transmit == .request)
        #expect(first.start == start(.a, 500))
        #expect(first.alsoStart == start(.b, 32_000))
        var intervals: [UInt64] = []
        for _ in 0..<3 {
            let output = machine.handle(.timerFired(.a))
            #expect(output.transmit == .request)
            intervals.append(output.start!.afterMilliseconds)
        }
        #expect(intervals == [1_000, 2_000, 4_000], "A doubles, uncapped for INVITE (§17.1.1.2)")
        let trying = machine.handle(.response(status: 100))
        #expect(trying.passOn)
        #expect(trying.stop == [.a, .b])
        #expect(machine.state == .proceeding)
        #expect(machine.handle(.timerFired(.a)) == Machine.Output(), "a late A after a provisional does nothing")

        var (silent, _) = Machine.start(.inviteClient, reliable: false, timers: timers)
        let timeout = silent.handle(.timerFired(.b))
        #expect(timeout.outcome == .timedOut)
        #expect(silent.isTerminated)
    }

    @Test func clientInviteAcksANon2xxItselfAndAbsorbsItsRetransmissions() {
        var (machine, _) = Machine.start(.inviteClient, reliable: false, timers: timers)
        _ = machine.handle(.response(status: 180))
        let busy = machine.handle(.response(status: 486))
        #expect(busy.transmit == .ack)
        #expect(busy.passOn)
        #expect(busy.start == start(.d, 32_000))
        #expect(machine.state == .completed)
        let again = machine.handle(.response(status: 486))
        #expect(again.transmit == .ack)
        #expect(!again.passOn, "the client hears the final response once")
        #expect(machine.handle(.timerFired(.d)).outcome == .finished)
    }

    @Test func clientInvite2xxEntersAcceptedAndPassesRetransmitted2xxOn() {
        var (machine, _) = Machine.start(.inviteClient, reliable: true, timers: timers)
        let ok = machine.handle(.response(status: 200))
        #expect(ok.passOn)
        #expect(ok.transmit == nil, "the ACK for a 2xx is end to end")
        #expect(ok.start == start(.m, 32_000))
        #expect(machine.state == .accepted)
        #expect(machine.handle(.response(status: 200)).passOn)
        #expect(machine.handle(.timerFired(.m)).outcome == .finished)
    }

    @Test func clientInviteOverTCPNeitherRetransmitsNorWaitsToAbsorb() {
        var (machine, first) = Machine.start(.inviteClient, reliable: true, timers: timers)
        #expect(first.start == nil)
        #expect(first.alsoStart == start(.b, 32_000))
        #expect(machine.handle(.response(status: 503)).start == start(.d, 0))
    }

    @Test func aTransportErrorEndsAClientTransactionAtOnce() {
        var (invite, _) = Machine.start(.inviteClient, reliable: false, timers: timers)
        #expect(invite.handle(.transportError).outcome == .transportFailed)
        var (register, _) = Machine.start(.nonInviteClient, reliable: false, timers: timers)
        #expect(register.handle(.transportError).outcome == .transportFailed)
    }

    @Test func clientNonInviteDoublesUpToT2ThenStaysAtT2InProceeding() {
        var (machine, first) = Machine.start(.nonInviteClient, reliable: false, timers: timers)
        #expect(first.start == start(.e, 500))
        #expect(first.alsoStart == start(.f, 32_000))
        var intervals: [UInt64] = []
        for _ in 0..<5 { intervals.append(machine.handle(.timerFired(.e)).start!.afterMilliseconds) }
        #expect(intervals == [1_000, 2_000, 4_000, 4_000, 4_000])
        var (slow, _) = Machine.start(.nonInviteClient, reliable: false, timers: timers)
        _ = slow.handle(.response(status: 100))
        #expect(slow.handle(.timerFired(.e)).start == start(.e, 4_000))
        let ok = slow.handle(.response(status: 200))
        #expect(ok.passOn)
        #expect(ok.stop == [.e, .f])
        #expect(ok.start == start(.k, 5_000))
        #expect(slow.handle(.response(status: 200)) == Machine.Output(), "absorbed in Completed")
        #expect(slow.handle(.timerFired(.k)).outcome == .finished)
        var (lost, _) = Machine.start(.nonInviteClient, reliable: false, timers: timers)
        #expect(lost.handle(.timerFired(.f)).outcome == .timedOut)
    }

    @Test func serverInviteResendsTheLastResponseAndWaitsForTheAck() {
        var (machine, first) = Machine.start(.inviteServer, reliable: false, timers: timers)
        #expect(first == Machine.Output())
        #expect(machine.state == .proceeding)
        #expect(machine.handle(.requestRetransmitted).transmit == .lastResponse)
        #expect(machine.handle(.response(status: 180)).passOn)
        let busy = machine.handle(.response(status: 486))
        #expect(busy.passOn)
        #expect(busy.start == start(.g, 500))
        #expect(busy.alsoStart == start(.h, 32_000))
        #expect(machine.handle(.timerFired(.g)) .start == start(.g, 1_000))
        #expect(machine.handle(.requestRetransmitted).transmit == .lastResponse)
        let ack = machine.handle(.ack)
        #expect(ack.stop == [.g, .h])
        #expect(ack.start == start(.i, 5_000))
        #expect(machine.state == .confirmed)
        #expect(machine.handle(.ack) == Machine.Output(), "retransmitted ACKs are absorbed")
        #expect(machine.handle(.timerFired(.i)).outcome == .finished)

        var (unacked, _) = Machine.start(.inviteServer, reliable: false, timers: timers)
        _ = unacked.handle(.response(status: 404))
        #expect(unacked.handle(.timerFired(.h)).outcome == .timedOut)
    }

    @Test func serverInvite2xxIsAcceptedAndAbsorbsRetransmittedInvites() {
        var (machine, _) = Machine.start(.inviteServer, reliable: false, timers: timers)
        let ok = machine.handle(.response(status: 200))
        #expect(ok.passOn)
        #expect(ok.start == start(.l, 32_000))
        #expect(machine.handle(.requestRetransmitted) == Machine.Output())
        #expect(machine.handle(.response(status: 200)).passOn, "the core's retransmitted 2xx reaches the client")
        #expect(machine.handle(.timerFired(.l)).outcome == .finished)
    }

    @Test func serverNonInviteAbsorbsUntilItHasAResponseThenResendsIt() {
        var (machine, _) = Machine.start(.nonInviteServer, reliable: false, timers: timers)
        #expect(machine.handle(.requestRetransmitted) == Machine.Output())
        let ok = machine.handle(.response(status: 200))
        #expect(ok.passOn)
        #expect(ok.start == start(.j, 32_000))
        #expect(machine.handle(.requestRetransmitted).transmit == .lastResponse)
        #expect(machine.handle(.timerFired(.j)).outcome == .finished)
        var (overTCP, _) = Machine.start(.nonInviteServer, reliable: true, timers: timers)
        #expect(overTCP.handle(.response(status: 202)).start == start(.j, 0))
    }

    @Test func aTerminatedTransactionIgnoresEverything() {
        var (machine, _) = Machine.start(.nonInviteClient, reliable: false, timers: timers)
        _ = machine.handle(.timerFired(.f))
        for event: Machine.Event in [.response(status: 200), .timerFired(.e), .transportError, .requestRetransmitted] {
            #expect(machine.handle(event) == Machine.Output())
        }
    }

    @Test func timerBasesAreConfigurable() {
        var fast = TransactionTimers()
        fast.t1 = 100
        fast.t2 = 400
        let (_, first) = Machine.start(.inviteClient, reliable: false, timers: fast)
        #expect(first.start == start(.a, 100))
        #expect(first.alsoStart == start(.b, 6_400))
    }
}
