@testable import SIPTransport
import Testing

/// A worker loop simulated against three kinds of traffic, in nanoseconds. An open loop: datagrams arrive at a steady
/// rate whatever the worker does (phones and a core with many calls). Bursts: a few datagrams close together every
/// millisecond (what SIPp sends at a few hundred calls a second). A closed loop: `clients` each send their next request
/// a round trip after the worker handled the last (a few connections, one request in flight each). The worker waits
/// as `BatchWait` says: on the first completion, or for a batch of up to `batchSize` or `window`. Its CPU time: a
/// wake-up costs `wakeCost`, one that the window's timer ends `timerCost` more, and each completion `handlingPerEvent`.
private struct SimulatedWorker {
    enum Traffic {
        case open(perSecond: Double)
        case bursts(ofSize: Int, spacing: UInt64)
        case closed(clients: Int, roundTrip: UInt64, startingAt: UInt64 = 0)
    }

    let traffic: Traffic
    let window: UInt64 = 300_000
    let batchSize = 32
    let handlingPerEvent: UInt64 = 1_000
    let wakeCost: UInt64 = 5_000
    let timerCost: UInt64 = 3_000

    struct Outcome {
        var wakeUps = 0
        var emptyWakeUps = 0
        var handled = 0
        var batchedWaits = 0
        var cpu: UInt64 = 0
    }

    func run(windowMicroseconds: UInt32, for duration: UInt64) -> Outcome {
        var policy = BatchWait(windowMicroseconds: windowMicroseconds, now: 0, threadCPU: 0)
        var outcome = Outcome()
        var now: UInt64 = 0
        // Arrival times not yet handled, in order.
        var arrivals: [UInt64]
        var nextOpenArrival: Double = 0
        switch traffic {
        case .open, .bursts: arrivals = []
        case .closed(let clients, _, let start): arrivals = (0..<clients).map { start + UInt64($0) * 1_000 }
        }
        var burstIndex = 0
        func admitOpenArrivals(until time: UInt64) {
            switch traffic {
            case .open(let perSecond):
                while nextOpenArrival <= Double(time) {
                    arrivals.append(UInt64(nextOpenArrival))
                    nextOpenArrival += 1e9 / perSecond
                }
            case .bursts(let size, let spacing):
                while UInt64(burstIndex / size) * 1_000_000 + UInt64(burstIndex % size) * spacing <= time {
                    arrivals.append(UInt64(burstIndex / size) * 1_000_000 + UInt64(burstIndex % size) * spacing)
                    burstIndex += 1
                }
            case .closed: break
            }
        }
        while now < duration {
            admitOpenArrivals(until: now)
            let batched = policy.batches
            let waitStarted = now
            if batched {
                outcome.batchedWaits += 1
                // Until the batch is full or the window ends.
                let windowEnd = now + window
                admitOpenArrivals(until: windowEnd)
                if arrivals.count >= batchSize, arrivals[batchSize - 1] < windowEnd {
                    now = max(now, arrivals[batchSize - 1])
                } else {
                    now = windowEnd
                    outcome.cpu += timerCost
                }
            } else if arrivals.isEmpty || arrivals[0] > now {
                admitOpenArrivals(until: now + 1_000_000_000)
                now = arrivals.first ?? duration
            }
            let ready = arrivals.prefix { $0 <= now }.count
            arrivals.removeFirst(ready)
            outcome.wakeUps += 1
            outcome.cpu += wakeCost
            if ready == 0 { outcome.emptyWakeUps += 1 }
            policy.woke(batched: batched, slept: now - waitStarted, events: ready, now: now) { outcome.cpu }
            for _ in 0..<ready {
                now += handlingPerEvent
                outcome.cpu += handlingPerEvent
                outcome.handled += 1
                if case .closed(_, let roundTrip, _) = traffic {
                    let next = now + roundTrip
                    let at = arrivals.firstIndex { $0 > next } ?? arrivals.endIndex
                    arrivals.insert(next, at: at)
                }
            }
        }
        return outcome
    }
}

@Suite("Batch wait")
struct BatchWaitTests {
    private let oneSecond: UInt64 = 1_000_000_000

    @Test("off unless a window is configured")
    func offWithoutWindow() {
        var policy = BatchWait(windowMicroseconds: 0, now: 0, threadCPU: 0)
        for step in 0..<10_000 {
            policy.woke(batched: false, slept: 1_000, events: 32, now: UInt64(step) * 50_000) { UInt64(step) * 10_000 }
            #expect(!policy.batches)
        }
    }

    @Test("dense open traffic (12,000 datagrams/s) wakes the worker less than half as often")
    func denseOpenTrafficBatches() {
        let worker = SimulatedWorker(traffic: .open(perSecond: 12_000))
        let unbatched = worker.run(windowMicroseconds: 0, for: 2 * oneSecond)
        let batched = worker.run(windowMicroseconds: 300, for: 2 * oneSecond)
        #expect(abs(batched.handled - unbatched.handled) * 100 <= unbatched.handled)  // the same traffic handled
        #expect(batched.wakeUps * 2 < unbatched.wakeUps)
        #expect(batched.cpu < unbatched.cpu)
    }

    @Test("sparse traffic (300 datagrams/s) is never batched: no empty wake-ups, no delay")
    func sparseTrafficIsNotBatched() {
        let worker = SimulatedWorker(traffic: .open(perSecond: 300))
        let outcome = worker.run(windowMicroseconds: 300, for: 2 * oneSecond)
        #expect(outcome.handled >= 590)
        #expect(outcome.batchedWaits == 0)
        #expect(outcome.emptyWakeUps == 0)
    }

    @Test("clients waiting for answers are not slowed", arguments: [1, 4, 16])
    func closedLoopKeepsItsRate(clients: Int) {
        let worker = SimulatedWorker(traffic: .closed(clients: clients, roundTrip: 100_000))
        let unbatched = worker.run(windowMicroseconds: 0, for: 2 * oneSecond)
        let batched = worker.run(windowMicroseconds: 300, for: 2 * oneSecond)
        // Batching every wait would cut these clients' rate to a third or less; the samples allow 5% of the time.
        #expect(Double(batched.handled) >= 0.9 * Double(unbatched.handled))
    }

    @Test("clients that start after a quiet spell are not slowed either")
    func closedLoopAfterQuiet() {
        let worker = SimulatedWorker(traffic: .closed(clients: 4, roundTrip: 100_000, startingAt: 300_000_000))
        let unbatched = worker.run(windowMicroseconds: 0, for: 2 * oneSecond)
        let batched = worker.run(windowMicroseconds: 300, for: 2 * oneSecond)
        #expect(Double(batched.handled) >= 0.9 * Double(unbatched.handled))
    }

    @Test("bursts that one wake-up takes whole anyway (3,000 datagrams/s) are not batched: it would cost more")
    func burstsAreNotBatched() {
        let worker = SimulatedWorker(traffic: .bursts(ofSize: 3, spacing: 20_000))
        let unbatched = worker.run(windowMicroseconds: 0, for: 2 * oneSecond)
        let batched = worker.run(windowMicroseconds: 300, for: 2 * oneSecond)
        // Batching each burst's tail adds a timer wake-up and an empty one: about a quarter more CPU where kept.
        #expect(Double(batched.cpu) <= 1.05 * Double(unbatched.cpu))
    }

    @Test("batching resumes when a closed loop gives way to open traffic")
    func batchingComesBack() {
        var policy = BatchWait(windowMicroseconds: 300, now: 0, threadCPU: 0)
        var now: UInt64 = 0
        var cpu: UInt64 = 0
        func wake(batched: Bool, slept: UInt64, events: Int) {
            now += slept
            cpu += 5_000 + (batched ? 3_000 : 0) + UInt64(events) * 1_000
            policy.woke(batched: batched, slept: slept, events: events, now: now) { cpu }
        }
        // A closed loop: batches bring fewer completions per second than waking on the first did.
        while now < oneSecond {
            let batched = policy.batches
            wake(batched: batched, slept: batched ? 300_000 : 100_000, events: batched ? 2 : 4)
        }
        #expect(!policy.batches)
        // Open traffic: as many completions per second either way. The cycle after the closed loop's is batched once
        // its samples are taken (cycles start about every second; the loop ends inside one).
        var timeBatched: UInt64 = 0
        let openStart = now
        while now < openStart + 900_000_000 {
            let batched = policy.batches
            let slept: UInt64 = batched ? 300_000 : 100_000
            if batched { timeBatched += slept }
            wake(batched: batched, slept: slept, events: Int(slept / 25_000))
        }
        #expect(policy.batches)
        #expect(timeBatched * 10 > (now - openStart) * 5)
    }
}
