/// A worker loop's time on work against its time waiting, over windows of about a second: the busy ratio.
struct LoopClock {
    private var windowStart: UInt64
    private var waitedInWindow: UInt64 = 0
    private var lastRatio: Double = 0

    init(started: UInt64) {
        windowStart = started
    }

    mutating func waited(from start: UInt64, to end: UInt64) {
        waitedInWindow &+= end &- start
    }

    /// The busy share of the last full window; a new window starts once the current one is a second old.
    mutating func busyRatio(now: UInt64) -> Double {
        let elapsed = now &- windowStart
        if elapsed >= 1_000_000_000 {
            lastRatio = max(0, min(1, 1 - Double(waitedInWindow) / Double(elapsed)))
            windowStart = now
            waitedInWindow = 0
        }
        return lastRatio
    }
}
