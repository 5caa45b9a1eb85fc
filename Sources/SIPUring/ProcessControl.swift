import CSIPUring
#if canImport(Glibc)
import Glibc
#endif

/// Secret random bytes from the kernel (arc4random reads getrandom): branch secrets and flow keys.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        arc4random_buf(&bytes, count)
        return bytes
    }

    public static func uint64() -> UInt64 {
        var value: UInt64 = 0
        arc4random_buf(&value, MemoryLayout<UInt64>.size)
        return value
    }
}

/// Names the calling thread for the kernel (`top -H`, `perf`, /proc/PID/task/TID/comm): Foundation's Thread.name
/// does not on Linux. At most 15 bytes are kept.
public enum ThreadName {
    public static func setCurrent(_ name: String) {
        _ = csip_set_thread_name(name)
    }
}

/// The process's stop and reload signals, taken synchronously by one thread: blocked in every thread (block them
/// before any thread starts, so threads inherit the mask) and collected with sigtimedwait, so no handler runs
/// on an arbitrary thread in the middle of its work.
public struct ProcessSignals {
    public enum Received: Equatable {
        /// SIGTERM or SIGINT (the signal number).
        case stop(Int32)
        /// SIGHUP.
        case reload
        /// SIGUSR2: start a successor and hand it the listening sockets (zero-downtime restart or upgrade).
        case upgrade
        /// The wait timed out.
        case none
    }

    private var set = sigset_t()

    /// Blocks SIGTERM, SIGINT, SIGHUP and SIGUSR2 in the calling thread and in threads it starts from now on.
    public init() {
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        sigaddset(&set, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits up to `microseconds` for one of the signals.
    public mutating func wait(microseconds: UInt64) -> Received {
        var timeout = timespec(tv_sec: Int(microseconds / 1_000_000), tv_nsec: Int(microseconds % 1_000_000) * 1_000)
        let received = sigtimedwait(&set, nil, &timeout)
        if received < 0 { return .none }
        switch received {
        case SIGHUP: return .reload
        case SIGUSR2: return .upgrade
        default: return .stop(received)
        }
    }

    /// Asks the whole process to stop (a process-directed SIGTERM, which the waiting thread takes), from any thread.
    public static func requestStop() {
        kill(getpid(), SIGTERM)
    }
}
