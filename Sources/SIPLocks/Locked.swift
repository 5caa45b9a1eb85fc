#if canImport(Glibc)
import Glibc
#endif

/// A value behind a lock: the one lock type of this package, for the little state threads share (metrics board,
/// policy mailbox, upstream board, shared bans, handover), none of it on the message path.
///
/// A `pthread_mutex_t`, which ThreadSanitizer intercepts. Synchronization's `Mutex` locks with futexes inside a
/// library TSan does not instrument, so TSan reports every access it guards as a race (two threads incrementing a
/// `Mutex<Int>` 100,000 times each: "Swift access race", and the count is right: README "Sanitizers"); with this
/// lock TSan's verdicts on our threads mean something.
public final class Locked<State>: @unchecked Sendable {
    // @unchecked: `state` is read and written only between pthread_mutex_lock and pthread_mutex_unlock.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var state: State

    public init(_ initial: State) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        // A default mutex cannot fail to initialise on Linux (glibc returns 0).
        let status = pthread_mutex_init(mutex, nil)
        precondition(status == 0, "pthread_mutex_init: \(status)")
        state = initial
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the state, holding the lock.
    public func withLock<Result>(_ body: (inout State) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&state)
    }
}
