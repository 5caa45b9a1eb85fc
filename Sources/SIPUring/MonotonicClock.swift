#if canImport(Glibc)
import Glibc
#endif

/// Time since an arbitrary start, never going backwards: for rate windows, bans, timeouts and latency.
public enum MonotonicClock {
    public static func milliseconds() -> UInt64 {
        nanoseconds() / 1_000_000
    }

    public static func nanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
