import Benchmark

// The transaction layer's data structures: the timer wheel (insert, cancel, expire with 1 M live timers) and the
// transaction map (insert, match, remove without allocating in steady state). Each file adds its own.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .throughput, .mallocCountTotal],
        timeUnits: .nanoseconds,
        maxDuration: .seconds(3),
        maxIterations: 1_000
    )
    timerWheelBenchmarks()
    transactionMapBenchmarks()
}
