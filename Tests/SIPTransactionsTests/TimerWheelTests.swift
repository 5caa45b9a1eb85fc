import SIPTransactions
import SIPTestSupport
import Testing

@Suite struct TimerWheelTests {
    // Tick boundaries of the levels (64, 64², 64³, 64⁴ ticks) and the delays of SIP's timers.
    static let boundaryDelays: [UInt64] = [
        0, 1, 2, 63, 64, 65, 4_095, 4_096, 4_097, 262_143, 262_144, 262_145, 500, 32_000, 180_000, 3_600_000,
        16_777_215, 16_777_216, 1 << 30,
    ]
    // Start times just before, at and after carries into each level.
    static let startTimes: [UInt64] = [0, 1, 63, 64, 65, 4_095, 4_096, 262_143, 262_144, 16_777_215, 1 << 40 | 4_095]

    @Test func firesAtItsDeadlineAndNotBefore() {
        var wheel = TimerWheel(capacity: 4, now: 1_000)
        let handle = wheel.schedule(after: 10, payload: 7, now: 1_000)
        #expect(handle != nil)
        #expect(wheel.count == 1)
        #expect(fired(&wheel, now: 1_009) == [])
        #expect(fired(&wheel, now: 1_010) == [7])
        #expect(wheel.count == 0)
        #expect(fired(&wheel, now: 1_011) == [])
    }

    @Test(arguments: startTimes)
    func levelBoundariesFireExactlyWhenJumpedTo(start: UInt64) {
        for delay in Self.boundaryDelays {
            var wheel = TimerWheel(capacity: 1, now: start)
            _ = wheel.schedule(after: delay, payload: delay, now: start)
            if delay > 0 {
                #expect(fired(&wheel, now: start + delay - 1) == [], "delay \(delay) from \(start) fired early")
            }
            #expect(fired(&wheel, now: start + delay) == [delay], "delay \(delay) from \(start) did not fire")
        }
    }

    /// A worker that sleeps until `nextDeadline` each time: it must wake no later than the deadline (a few times
    /// earlier, to cascade) and fire the timer exactly at it.
    @Test(arguments: startTimes)
    func levelBoundariesFireExactlyWhenWaitingOnNextDeadline(start: UInt64) {
        for delay in Self.boundaryDelays {
            var wheel = TimerWheel(capacity: 1, now: start)
            _ = wheel.schedule(after: delay, payload: delay, now: start)
            var wakeups = 0
            var firedAt: UInt64?
            while let deadline = wheel.nextDeadline {
                #expect(deadline <= start + delay, "delay \(delay) from \(start): slept past the deadline")
                wakeups += 1
                if !fired(&wheel, now: deadline).isEmpty { firedAt = deadline }
            }
            #expect(firedAt == start + delay, "delay \(delay) from \(start)")
            // A delay under 64^k ticks moves at most k - 1 times: a wake-up per move, and one to fire.
            #expect(wakeups <= 6, "delay \(delay) from \(start): \(wakeups) wake-ups")
        }
    }

    /// A level-2 slot and a level-1 slot that both start at tick 4,096: whichever cascades first, the other must
    /// still be seen as due at 4,096, not a turn later.
    @Test func coarseSlotsStartingAtTheSameTick() {
        var wheel = TimerWheel(capacity: 2, now: 0)
        _ = wheel.schedule(after: 4_101, payload: 1, now: 0)  // 4,101 ticks away: level 2, slot [4096, 8192)
        #expect(fired(&wheel, now: 100) == [])
        _ = wheel.schedule(after: 4_006, payload: 2, now: 100)  // due 4,106: level 1, slot [4096, 4160)
        var firings: [UInt64: UInt64] = [:]
        while let deadline = wheel.nextDeadline {
            for payload in fired(&wheel, now: deadline) { firings[payload] = deadline }
        }
        #expect(firings == [1: 4_101, 2: 4_106])
    }

    @Test func steppingOneMillisecondAtATimeThroughCascades() {
        var wheel = TimerWheel(capacity: 8, now: 0)
        let delays: [UInt64] = [63, 64, 65, 4_095, 4_096, 4_097, 70_000]
        for delay in delays { _ = wheel.schedule(after: delay, payload: delay, now: 0) }
        var firings: [UInt64: UInt64] = [:]
        for now in UInt64(1)...70_000 {
            for payload in fired(&wheel, now: now) { firings[payload] = now }
        }
        #expect(firings == Dictionary(uniqueKeysWithValues: delays.map { ($0, $0) }))
    }

    @Test func longTickRoundsDeadlinesUpToATick() {
        var wheel = TimerWheel(capacity: 4, tickMilliseconds: 10, now: 5)
        _ = wheel.schedule(after: 10, payload: 1, now: 5)  // due at 15: fires at 20
        _ = wheel.schedule(after: 15, payload: 2, now: 5)  // due at 20: fires at 20
        #expect(wheel.nextDeadline == 20)
        #expect(fired(&wheel, now: 19) == [])
        #expect(Set(fired(&wheel, now: 20)) == [1, 2])
    }

    @Test func sipTimerDelaysFireOnTime() {
        let timers = TransactionTimers()
        let delays = [timers.t1, 64 * timers.t1, 180_000, 3_600_000]
        var wheel = TimerWheel(capacity: 8, now: 123_456)
        for delay in delays { _ = wheel.schedule(after: delay, payload: delay, now: 123_456) }
        var now: UInt64 = 123_456
        var firings: [UInt64: UInt64] = [:]
        // A busy worker: an expiry every 97 ms.
        while wheel.count > 0 {
            now += 97
            for payload in fired(&wheel, now: now) { firings[payload] = now }
        }
        for delay in delays {
            let due = 123_456 + delay
            let firing = firings[delay] ?? 0
            #expect(firing >= due && firing < due + 97, "delay \(delay) fired at \(firing), due \(due)")
        }
    }

    @Test func cancelBeforeFiring() {
        var wheel = TimerWheel(capacity: 4, now: 0)
        let kept = wheel.schedule(after: 500, payload: 1, now: 0)
        let cancelled = wheel.schedule(after: 500, payload: 2, now: 0)!
        #expect(kept != nil)
        #expect(cancel(&wheel, cancelled))
        #expect(wheel.count == 1)
        #expect(fired(&wheel, now: 10_000) == [1])
    }

    @Test func cancellingTheOnlyTimerEmptiesNextDeadline() {
        var wheel = TimerWheel(capacity: 4, now: 0)
        let early = wheel.schedule(after: 10, payload: 1, now: 0)!
        let late = wheel.schedule(after: 20, payload: 2, now: 0)!
        #expect(wheel.nextDeadline == 10)
        wheel.cancel(early)
        #expect(wheel.nextDeadline == 20)
        wheel.cancel(late)
        #expect(wheel.nextDeadline == nil)
    }

    @Test func cancelAfterFiringOrTwiceIsANoOp() {
        var wheel = TimerWheel(capacity: 2, now: 0)
        let firing = wheel.schedule(after: 5, payload: 1, now: 0)!
        let cancelled = wheel.schedule(after: 5, payload: 2, now: 0)!
        #expect(cancel(&wheel, cancelled))
        #expect(!cancel(&wheel, cancelled))
        #expect(fired(&wheel, now: 5) == [1])
        #expect(!cancel(&wheel, firing))
        #expect(wheel.count == 0)
    }

    @Test func staleHandlesDoNotTouchTheNodesNextTimer() {
        var wheel = TimerWheel(capacity: 1, now: 0)
        let first = wheel.schedule(after: 5, payload: 1, now: 0)!
        #expect(fired(&wheel, now: 5) == [1])
        let second = wheel.schedule(after: 5, payload: 2, now: 5)!  // the same node, reused
        #expect(second != first)
        #expect(!cancel(&wheel, first))
        #expect(wheel.count == 1)
        #expect(cancel(&wheel, second))
        let third = wheel.schedule(after: 5, payload: 3, now: 5)!
        #expect(!cancel(&wheel, first))
        #expect(!cancel(&wheel, second))
        #expect(fired(&wheel, now: 10) == [3])
        #expect(!cancel(&wheel, third))
    }

    @Test func schedulingBeyondCapacityFails() {
        var wheel = TimerWheel(capacity: 3, now: 0)
        let handles = (0..<3).map { wheel.schedule(after: 100, payload: UInt64($0), now: 0) }
        #expect(handles.allSatisfy { $0 != nil })
        #expect(wheel.schedule(after: 100, payload: 3, now: 0) == nil)
        #expect(wheel.count == 3)
        wheel.cancel(handles[1]!)
        #expect(wheel.schedule(after: 100, payload: 4, now: 0) != nil)
        #expect(wheel.schedule(after: 100, payload: 5, now: 0) == nil)
        #expect(Set(fired(&wheel, now: 100)) == [0, 2, 4])

        var empty = TimerWheel(capacity: 0, now: 0)
        #expect(empty.schedule(after: 1, payload: 0, now: 0) == nil)
        #expect(empty.nextDeadline == nil)
        #expect(fired(&empty, now: 1_000) == [])
    }

    @Test func bigJumpsFireWhatIsDueInDeadlineOrder() {
        var wheel = TimerWheel(capacity: 16, now: 1_000)
        let delays: [UInt64] = [180_000, 10, 32_000, 500, 3_600_000, 4_000, 1_000, 64, 250]
        for delay in delays { _ = wheel.schedule(after: delay, payload: delay, now: 1_000) }
        // A worker that slept 200 ms, then 10 s, then an hour.
        #expect(fired(&wheel, now: 1_200) == [10, 64])
        #expect(fired(&wheel, now: 11_200) == [250, 500, 1_000, 4_000])
        #expect(fired(&wheel, now: 3_601_000) == [32_000, 180_000, 3_600_000])
        #expect(wheel.count == 0)
        #expect(wheel.nextDeadline == nil)
    }

    @Test func aDelayThatAlreadyRanOutIsDueAtOnce() {
        var wheel = TimerWheel(capacity: 4, now: 0)
        #expect(fired(&wheel, now: 100) == [])
        _ = wheel.schedule(after: 0, payload: 1, now: 100)
        _ = wheel.schedule(after: 10, payload: 2, now: 50)  // a stale `now`: due at 60, already past
        #expect(wheel.nextDeadline == 100)
        #expect(Set(fired(&wheel, now: 100)) == [1, 2])
    }

    @Test func hugeDelaysSaturateInsteadOfWrapping() {
        var wheel = TimerWheel(capacity: 2, now: 1_000)
        _ = wheel.schedule(after: .max, payload: 1, now: 1_000)
        _ = wheel.schedule(after: 1 << 62, payload: 2, now: 1_000)
        #expect(fired(&wheel, now: 1 << 59) == [])
        #expect(wheel.nextDeadline! > 1 << 59)
        #expect(wheel.count == 2)
    }

    /// Retransmission timers re-arm from the expiry loop: Timer E doubles from T1 up to T2.
    @Test func reschedulingWhileDrainingWithPopExpired() {
        var wheel = TimerWheel(capacity: 2, now: 0)
        _ = wheel.schedule(after: 500, payload: 500, now: 0)
        var firings: [UInt64] = []
        while let deadline = wheel.nextDeadline, deadline <= 20_000 {
            while let interval = wheel.popExpired(now: deadline) {
                firings.append(deadline)
                _ = wheel.schedule(after: min(interval * 2, 4_000), payload: min(interval * 2, 4_000), now: deadline)
            }
        }
        #expect(firings == [500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500])
    }

    /// 100,000 timers with delays up to an hour, some cancelled, expired by a worker whose clock advances in steps
    /// of 1 to 500 ms with sleeps of up to a minute: each timer fires once, never before its deadline, and in the
    /// first expiry at or after it (rounded up to the tick).
    @Test(arguments: [UInt64(1), 4])
    func manyRandomTimersFireOnceOnTime(tick: UInt64) {
        var random = SplitMix64(seed: 0x5EED_0000 + tick)
        let timerCount = 100_000
        var wheel = TimerWheel(capacity: timerCount, tickMilliseconds: tick, now: 7)
        var due: [UInt64] = []  // per payload: the first `now` at which it may fire, or .max when cancelled
        var scheduledAt: [UInt64] = []
        var handles: [TimerHandle] = []
        var firedAt = [UInt64](repeating: 0, count: timerCount)
        var firings = 0
        var previousNow: UInt64 = 7
        var now: UInt64 = 7

        func expire(until newNow: UInt64) {
            now = newNow
            wheel.expire(now: now) { payload in
                let id = Int(payload)
                #expect(firedAt[id] == 0, "timer \(id) fired twice")
                firedAt[id] = now
                // Due by now, and not due at the previous expiry unless scheduled after it.
                let missedPrevious = due[id] <= previousNow && scheduledAt[id] < previousNow
                #expect(due[id] <= now && !missedPrevious, "timer \(id) due \(due[id]) fired at \(now)")
                firings += 1
            }
            previousNow = now
        }

        while due.count < timerCount || wheel.count > 0 {
            // Schedule in bursts between expiries, so timers start from every alignment of the clock.
            for _ in 0..<Int.random(in: 0...200, using: &random) where due.count < timerCount {
                let delay = randomDelay(&random)
                let id = UInt64(due.count)
                let deadline = now + delay
                due.append((deadline + tick - 1) / tick * tick)
                scheduledAt.append(now)
                handles.append(wheel.schedule(after: delay, payload: id, now: now)!)
                // Cancel one in ten, sometimes right away, sometimes a random earlier one (which may have fired).
                if random.next() % 10 == 0 {
                    let victim = random.next() % 2 == 0 ? Int(id) : Int.random(in: 0...Int(id), using: &random)
                    let wasPending = firedAt[victim] == 0 && due[victim] != .max
                    #expect(cancel(&wheel, handles[victim]) == wasPending, "cancel of timer \(victim)")
                    if wasPending { due[victim] = .max }
                }
            }
            let step = random.next() % 50 == 0 ? UInt64.random(in: 500...60_000, using: &random) : UInt64.random(in: 1...500, using: &random)
            expire(until: now + step)
        }
        let cancelled = due.count(where: { $0 == .max })
        #expect(firings + cancelled == timerCount)
        #expect(firedAt.indices.allSatisfy { (firedAt[$0] == 0) == (due[$0] == .max) })
    }

    /// The same random timers under a worker that sleeps exactly until `nextDeadline`: every timer fires exactly at
    /// its deadline, so `nextDeadline` never overshoots, and the number of early wake-ups stays bounded.
    @Test func nextDeadlineNeverOvershoots() {
        var random = SplitMix64(seed: 42)
        let timerCount = 20_000
        var wheel = TimerWheel(capacity: timerCount, now: 1_000_003)
        var due: [UInt64] = []
        for id in 0..<timerCount {
            let delay = randomDelay(&random)
            due.append(1_000_003 + delay)
            _ = wheel.schedule(after: delay, payload: UInt64(id), now: 1_000_003)
        }
        var wakeups = 0
        var firings = 0
        while let deadline = wheel.nextDeadline {
            wakeups += 1
            let countBefore = wheel.count
            #expect(fired(&wheel, now: deadline - 1) == [])
            #expect(wheel.count == countBefore)
            wheel.expire(now: deadline) { payload in
                #expect(due[Int(payload)] == deadline, "timer \(payload) due \(due[Int(payload)]) fired at \(deadline)")
                firings += 1
            }
        }
        #expect(firings == timerCount)
        // Each timer moves at most 3 times before firing (delays under 64⁴ ms), and each move needs one wake-up
        // at most.
        #expect(wakeups <= 4 * timerCount)
    }

    // MARK: - Helpers

    private func fired(_ wheel: inout TimerWheel, now: UInt64) -> [UInt64] {
        var payloads: [UInt64] = []
        wheel.expire(now: now) { payloads.append($0) }
        return payloads
    }

    /// `wheel.cancel(_:)`, callable inside `#expect` (which cannot take a mutating call).
    private func cancel(_ wheel: inout TimerWheel, _ handle: TimerHandle) -> Bool {
        wheel.cancel(handle)
    }

    /// Delays spread over the levels: a quarter each under 64 ms, 4 s, 4.4 min and 1 h.
    private func randomDelay(_ random: inout SplitMix64) -> UInt64 {
        let bounds: [UInt64] = [64, 4_096, 262_144, 3_600_000]
        return UInt64.random(in: 0...bounds[Int(random.next() % 4)], using: &random)
    }
}
