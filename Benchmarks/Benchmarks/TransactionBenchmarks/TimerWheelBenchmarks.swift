import Benchmark
import SIPTransactions

// The timer wheel under a worker's worst load: 1,000,000 live timers with random delays from 1 ms to 3 min (T1 to
// Timer C), built once per benchmark in setup. Each sample does 1,000 operations (`scalingFactor: .kilo`), so
// figures marked `*` are per operation. Work that only restores the 1 M live timers (cancelling what a sample
// scheduled, re-arming what it fired) runs after `stopMeasurement()`.
//
// mallocCountTotal must stay at the harness's own count: the wheel allocates its nodes in `init` and never again.
// Every sample counts 16 allocations, all the harness's (reading OS statistics for `cpuTotal`): with
// `--metric mallocCountTotal` alone the count is 0, and `--allocation-stacks` finds none in the measured region.

func timerWheelBenchmarks() {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000,
        // `thresholds check` compares the per-sample count with Thresholds/ (16): 100 more is 0.1 allocations per
        // operation, and for the cascade benchmark far fewer than one per moved timer (23,000 to 45,000).
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 100])]
    )

    Benchmark("TimerWheel schedule, 1M live", configuration: configuration) { benchmark, fixture in
        fixture.timers.measureSchedule(benchmark)
    } setup: {
        LoadedWheelFixture()
    }

    Benchmark("TimerWheel cancel, 1M live", configuration: configuration) { benchmark, fixture in
        fixture.timers.measureCancel(benchmark)
    } setup: {
        LoadedWheelFixture()
    }

    Benchmark("TimerWheel schedule+cancel pair, 1M live", configuration: configuration) { benchmark, fixture in
        fixture.timers.measureScheduleCancelPair(benchmark)
    } setup: {
        LoadedWheelFixture()
    }

    Benchmark("TimerWheel expire, 1M live", configuration: configuration) { benchmark, fixture in
        fixture.timers.measureExpire(benchmark)
    } setup: {
        LoadedWheelFixture()
    }

    // The worst single expiry: time crossing a 4,096 ms boundary moves a whole level-2 slot (about 45,000 of the
    // 1 M timers once re-arming has reached a steady state; 23,000 at first) to finer levels in one call. Per call,
    // not per timer.
    var cascadeConfiguration = configuration
    cascadeConfiguration.scalingFactor = .one
    Benchmark("TimerWheel cascade of a 4 s slot, 1M live", configuration: cascadeConfiguration) { benchmark, fixture in
        fixture.timers.measureCoarseCascade(benchmark)
    } setup: {
        LoadedWheelFixture()
    }
}

/// Holds the loaded wheel across the samples of one benchmark. The benchmarks reach it through one `inout` access
/// per sample (`fixture.timers.measure…`), so the measured loops pay no exclusivity check per operation.
private final class LoadedWheelFixture {
    var timers = LiveTimers()
}

private struct LiveTimers {
    static let liveCount = 1_000_000
    static let batchCount = 1_000  // the scaling factor: operations per sample
    /// Payloads of timers a sample adds on top of the live ones.
    static let batchPayloadBit: UInt64 = 1 << 63

    var wheel: TimerWheel
    /// The benchmarks' clock: fixed, except in the expiry benchmark.
    var now: UInt64 = 0
    /// Random delays, drawn before anything is measured; `nextDelay()` cycles through them.
    let delays: [UInt64]
    var delayCursor = 0
    /// The live timers' handles, by payload (0 ..< liveCount).
    var liveHandles: [TimerHandle?]
    /// The live timers in random order, for cancelling old timers scattered over the node array.
    let cancelOrder: [Int]
    var cancelCursor = 0
    /// Per sample: the timers it scheduled, or the payloads it fired.
    var batchHandles: [TimerHandle?] = Array(repeating: nil, count: batchCount)
    var batchPayloads: [UInt64] = Array(repeating: 0, count: batchCount)

    init() {
        var random = SplitMix64(seed: 0xD1CE)
        delays = (0..<65_536).map { _ in UInt64.random(in: 1...180_000, using: &random) }
        cancelOrder = (0..<Self.liveCount).shuffled(using: &random)
        wheel = TimerWheel(capacity: Self.liveCount + Self.batchCount, now: 0)
        liveHandles = Array(repeating: nil, count: Self.liveCount)
        for payload in 0..<Self.liveCount {
            liveHandles[payload] = wheel.schedule(after: nextDelay(), payload: UInt64(payload), now: now)
        }
        precondition(wheel.count == Self.liveCount, "the wheel did not take 1 M timers")
    }

    mutating func nextDelay() -> UInt64 {
        delayCursor = (delayCursor + 1) & (delays.count - 1)
        return delays[delayCursor]
    }

    mutating func measureSchedule(_ benchmark: Benchmark) {
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            batchHandles[index] = wheel.schedule(
                after: nextDelay(), payload: Self.batchPayloadBit | UInt64(index), now: now
            )
        }
        benchmark.stopMeasurement()
        for index in 0..<Self.batchCount {
            precondition(wheel.cancel(batchHandles[index]!), "a scheduled timer was not live")
        }
    }

    /// Cancels live timers scheduled long ago, in random order (cache misses included), then re-arms them.
    mutating func measureCancel(_ benchmark: Benchmark) {
        var cancelled = 0
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            let payload = cancelOrder[(cancelCursor + index) % Self.liveCount]
            if wheel.cancel(liveHandles[payload]!) { cancelled += 1 }
        }
        benchmark.stopMeasurement()
        precondition(cancelled == Self.batchCount, "cancelled \(cancelled) live timers of \(Self.batchCount)")
        for index in 0..<Self.batchCount {
            let payload = cancelOrder[(cancelCursor + index) % Self.liveCount]
            liveHandles[payload] = wheel.schedule(after: nextDelay(), payload: UInt64(payload), now: now)
        }
        cancelCursor = (cancelCursor + Self.batchCount) % Self.liveCount
    }

    /// A transaction that ends before its timer: schedule, then cancel right away.
    mutating func measureScheduleCancelPair(_ benchmark: Benchmark) {
        var cancelled = 0
        benchmark.startMeasurement()
        for index in benchmark.scaledIterations {
            let handle = wheel.schedule(after: nextDelay(), payload: Self.batchPayloadBit | UInt64(index), now: now)
            if wheel.cancel(handle!) { cancelled += 1 }
        }
        benchmark.stopMeasurement()
        precondition(cancelled == Self.batchCount && wheel.count == Self.liveCount, "pairs left timers behind")
    }

    /// Advances the clock 1 ms at a time and fires what is due until 1,000 timers have fired: per fired timer, the
    /// cost includes the empty polls and the cascades. The fired timers are re-armed afterwards, so the rate goes
    /// from 5.5 firings per ms (1 M delays spread over 3 min) towards 11 (re-armed timers pile up in front).
    mutating func measureExpire(_ benchmark: Benchmark) {
        precondition(benchmark.scaledIterations.count == Self.batchCount, "one sample must fire one batch")
        var fired = 0
        benchmark.startMeasurement()
        while fired < Self.batchCount {
            if let payload = wheel.popExpired(now: now) {
                batchPayloads[fired] = payload
                fired += 1
            } else {
                now += 1
            }
        }
        benchmark.stopMeasurement()
        for payload in batchPayloads {
            liveHandles[Int(payload)] = wheel.schedule(after: nextDelay(), payload: payload, now: now)
        }
        precondition(wheel.count == Self.liveCount, "expiry lost live timers")
    }

    /// Brings the clock to just before the next level-2 slot boundary (firing and re-arming what falls due, not
    /// measured), then measures the one expiry at the boundary: the cascade of that slot and the level-1 slot
    /// under it, and the few timers due at that tick.
    mutating func measureCoarseCascade(_ benchmark: Benchmark) {
        let levelTwoSlotTicks: UInt64 = 64 * 64
        let boundary = (now / levelTwoSlotTicks + 1) * levelTwoSlotTicks
        now = boundary - 1
        while let payload = wheel.popExpired(now: now) {
            liveHandles[Int(payload)] = wheel.schedule(after: nextDelay(), payload: payload, now: now)
        }
        now = boundary
        var fired = 0
        benchmark.startMeasurement()
        while let payload = wheel.popExpired(now: now) {
            batchPayloads[fired] = payload
            fired += 1
        }
        benchmark.stopMeasurement()
        for payload in batchPayloads[..<fired] {
            liveHandles[Int(payload)] = wheel.schedule(after: nextDelay(), payload: payload, now: now)
        }
        precondition(wheel.count == Self.liveCount, "expiry lost live timers")
    }
}

/// A small deterministic generator, so runs see the same delays.
private struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
