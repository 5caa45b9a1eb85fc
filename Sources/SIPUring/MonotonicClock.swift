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

/// CPU time the calling thread has used, in user and kernel mode (the kernel's work for its io_uring included): what
/// a worker's choices cost it. A system call, unlike the monotonic clock: for occasional samples, not per message.
public enum ThreadCPUClock {
    public static func nanoseconds() -> UInt64 {
        var used = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used)
        return UInt64(used.tv_sec) * 1_000_000_000 + UInt64(used.tv_nsec)
    }
}

/// Wall-clock time, for timestamps others read (HEP captures); never for durations.
public enum WallClock {
    public static func now() -> (seconds: UInt32, microseconds: UInt32) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return (UInt32(truncatingIfNeeded: now.tv_sec), UInt32(now.tv_nsec / 1_000))
    }
}

extension WallClock {
    /// Milliseconds since the Unix epoch: for intervals that several edges must agree on.
    public static func milliseconds() -> UInt64 {
        let now = now()
        return UInt64(now.seconds) * 1_000 + UInt64(now.microseconds / 1_000)
    }
}
