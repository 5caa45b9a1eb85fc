#if canImport(Glibc)
import Glibc
#endif

/// What poll(2) reported for one watched descriptor. An error or hang-up counts as both readable and writable:
/// the next receive or send then reports it, so callers need no third case.
public struct PollReadiness: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let readable = PollReadiness(rawValue: 1)
    public static let writable = PollReadiness(rawValue: 2)
}

/// The descriptors one poll(2) call waits on, rebuilt by the caller each round (the admin thread: a listener and
/// a few hundred connections at most, where poll's linear scan costs less than keeping an epoll set in step).
public struct PollSet {
    private var entries: [pollfd] = []

    public init(capacity: Int = 0) {
        entries.reserveCapacity(capacity)
    }

    public var count: Int { entries.count }

    public mutating func removeAll() {
        entries.removeAll(keepingCapacity: true)
    }

    /// Adds `descriptor`; its readiness after ``wait(timeoutMilliseconds:)`` is ``readiness(at:)`` with the
    /// returned index. Watching for neither still reports errors and hang-ups.
    @discardableResult
    public mutating func watch(_ descriptor: Int32, reading: Bool, writing: Bool) -> Int {
        var events: Int32 = 0
        if reading { events |= Int32(POLLIN) }
        if writing { events |= Int32(POLLOUT) }
        entries.append(pollfd(fd: descriptor, events: Int16(events), revents: 0))
        return entries.count - 1
    }

    /// Waits up to `timeoutMilliseconds` (0: only looks); returns how many descriptors are ready, 0 on timeout
    /// or when a signal interrupted the wait.
    @discardableResult
    public mutating func wait(timeoutMilliseconds: Int32) -> Int {
        for index in entries.indices { entries[index].revents = 0 }
        let ready = poll(&entries, nfds_t(entries.count), timeoutMilliseconds)
        return max(Int(ready), 0)
    }

    public func readiness(at index: Int) -> PollReadiness {
        let events = Int32(entries[index].revents)
        let failed = events & Int32(POLLERR | POLLHUP | POLLNVAL) != 0
        var readiness: PollReadiness = []
        if failed || events & Int32(POLLIN) != 0 { readiness.insert(.readable) }
        if failed || events & Int32(POLLOUT) != 0 { readiness.insert(.writable) }
        return readiness
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit and returns the soft limit in force
/// afterwards. The usual soft limit is 1,024: a thousand admin clients plus the workers' sockets would run out,
/// while the hard limit (systemd: 524,288) is what the administrator actually allowed.
@discardableResult
public func raiseOpenFileLimitToHardLimit() -> UInt64 {
    var limit = rlimit()
    guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
    guard limit.rlim_cur < limit.rlim_max else { return UInt64(limit.rlim_cur) }
    var raised = limit
    raised.rlim_cur = limit.rlim_max
    // An unlimited hard limit is not a valid descriptor count (the kernel caps it at fs.nr_open): keep the old one.
    guard setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &raised) == 0 else { return UInt64(limit.rlim_cur) }
    return UInt64(raised.rlim_cur)
}
