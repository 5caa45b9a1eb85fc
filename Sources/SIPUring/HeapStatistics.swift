import CSIPUring

/// The process allocator's own view of memory (jemalloc), for `/metrics` and the soak: live bytes show a leak
/// without the noise of pages the allocator keeps cached.
public enum HeapStatistics {
    /// (allocated, resident) bytes, or nil when the allocator is not jemalloc.
    public static func current() -> (allocated: UInt64, resident: UInt64)? {
        var allocated: UInt64 = 0
        var resident: UInt64 = 0
        return csip_heap_stats(&allocated, &resident) == 0 ? (allocated, resident) : nil
    }
}
