/// Whether a worker's next io_uring wait collects a batch (up to a window, `uring.batch_wait_us`) or wakes on the first
/// completion.
///
/// Each wake-up costs the kernel a context switch and the worker a run over cold caches: at moderate rates that is
/// most of a message's CPU. Waiting up to the window for more completions turns several wake-ups into one, at the price
/// of at most the window's latency. That pays only while completions arrive whether or not we answer: phones and a
/// core with many calls (an open loop). Clients that wait for our answer before sending again (a closed loop: a few
/// connections with one request in flight each) would only be slowed, by a window per message, and send less. Sparse
/// traffic would only gain an empty wake-up per datagram.
///
/// So the worker batches only while traffic is dense: after a wait for the first completion that slept less than the
/// window, and for as long as each batch brings something (an empty one, or a long sleep, ends it). And it checks
/// that batching pays: every cycle starts with a sample without batching and one with it, and the rest of the cycle
/// batches only if completions came at least `keptRate` as fast in the second sample as in the first (nobody was
/// slowed) and each cost at most `keptCost` of the thread's CPU time it cost in the first. The CPU time is what batching
/// is for, and only it tells: a window's timer costs a wake-up of its own (and on a VM a timer exit), so bursty
/// traffic at a few thousand datagrams a second, whose bursts one wake-up takes whole anyway, pays more with it.
struct BatchWait {
    /// How long each of a cycle's two samples lasts, and the whole cycle, in nanoseconds: 5% of the time is spent
    /// unbatched under an open loop, and 5% batched under a closed one.
    static let sampleNanoseconds: UInt64 = 50_000_000
    static let cycleNanoseconds: UInt64 = 1_000_000_000
    /// Batching that keeps this share of the unbatched completion rate is not slowing anyone down (an open loop's rate
    /// moves by less between two 50 ms samples; a closed loop's falls by a third or more).
    static let keptRate = 0.8
    /// Batching must bring the thread's CPU time per completion to this share of the unbatched sample's or less.
    static let keptCost = 0.95
    /// Completions an unbatched sample needs before a cycle is decided on it (1,000 a second): below that there is
    /// little to gain, and a rate from a handful is no measure.
    static let evidence = 50

    private enum Stage {
        case unbatchedSample, batchedSample, decided(batching: Bool)
    }

    /// The window in nanoseconds; 0 turns batching off.
    let windowNanoseconds: UInt64
    /// The next wait collects a batch.
    private(set) var batches = false
    private var stage = Stage.unbatchedSample
    private var cycleStart: UInt64
    private var sampleStart: UInt64
    private var sampleEvents = 0
    /// The thread's CPU time when the sample started.
    private var sampleCPU: UInt64 = 0
    /// Completions per nanosecond, and CPU nanoseconds per completion, in this cycle's unbatched sample.
    private var unbatchedRate = 0.0
    private var unbatchedCost = 0.0

    init(windowMicroseconds: UInt32, now: UInt64, threadCPU: UInt64) {
        windowNanoseconds = UInt64(windowMicroseconds) * 1_000
        cycleStart = now
        sampleStart = now
        sampleCPU = threadCPU
    }

    /// Records how the last wait went: whether it collected a batch, how long it slept, how many events it brought,
    /// and when it returned. `threadCPU` reads the worker thread's CPU time in nanoseconds; it is called only where a
    /// sample starts or ends, a few times a second.
    mutating func woke(batched: Bool, slept: UInt64, events: Int, now: UInt64, threadCPU: () -> UInt64) {
        guard windowNanoseconds > 0 else { return }
        let batchingAllowed: Bool
        switch stage {
        case .unbatchedSample:
            sampleEvents += events
            if now &- sampleStart >= Self.sampleNanoseconds {
                if sampleEvents < Self.evidence {
                    // Too quiet to judge (or traffic only just began): sample again rather than decide a cycle.
                    startCycle(now: now, cpu: threadCPU())
                    batchingAllowed = false
                } else {
                    let cpu = threadCPU()
                    unbatchedRate = Double(sampleEvents) / Double(now &- sampleStart)
                    unbatchedCost = Double(cpu &- sampleCPU) / Double(sampleEvents)
                    startSample(.batchedSample, now: now, cpu: cpu)
                    batchingAllowed = true
                }
            } else {
                batchingAllowed = false
            }
        case .batchedSample:
            sampleEvents += events
            if now &- sampleStart >= Self.sampleNanoseconds {
                let batchedRate = Double(sampleEvents) / Double(now &- sampleStart)
                let batchedCost = Double(threadCPU() &- sampleCPU) / Double(max(sampleEvents, 1))
                let keep = batchedRate >= Self.keptRate * unbatchedRate && batchedCost <= Self.keptCost * unbatchedCost
                stage = .decided(batching: keep)
                batchingAllowed = keep
            } else {
                batchingAllowed = true
            }
        case .decided(let batching):
            if now &- cycleStart >= Self.cycleNanoseconds {
                startCycle(now: now, cpu: threadCPU())
                batchingAllowed = false
            } else {
                batchingAllowed = batching
            }
        }
        batches = batchingAllowed && events > 0 && (batched || slept < windowNanoseconds)
    }

    private mutating func startCycle(now: UInt64, cpu: UInt64) {
        cycleStart = now
        startSample(.unbatchedSample, now: now, cpu: cpu)
    }

    private mutating func startSample(_ next: Stage, now: UInt64, cpu: UInt64) {
        stage = next
        sampleStart = now
        sampleCPU = cpu
        sampleEvents = 0
    }
}
