import Foundation
public import SIPMetrics
import SIPUring
import Synchronization

/// The admin HTTP server on its own thread: `/metrics` (Prometheus text), `/health/live`, `/health/ready`.
/// One poll loop serves many connections at once, each bounded (``AdminLimits``): a client that trickles bytes,
/// or a thousand that say nothing, cannot keep a liveness probe waiting. One request per connection.
public final class AdminServer: Sendable {
    /// The upstreams' health: readiness and the per-upstream metrics.
    public typealias UpstreamStatus = @Sendable () -> UpstreamReport

    public let limits: AdminLimits
    private let board: MetricsBoard
    private let upstreamStatus: UpstreamStatus?
    private let startTime = Date().timeIntervalSince1970
    private let running = Atomic<Bool>(true)

    /// The longest one poll waits, so that ``stop()`` is seen within it.
    static let pollInterval = Duration.milliseconds(200)
    /// Connections taken per round: the ones already open get their turn between bursts of new ones.
    static let acceptBatch = 64

    /// `upstreamStatus`: part of readiness and the `sip_upstream_*` families; nil means no upstream check (ready
    /// once the workers are up) and no such families.
    /// More single-value families for `/metrics` (name, type, help, value), read per scrape.
    private let extraMetrics: @Sendable () -> [(String, String, String, Double)]

    public init(board: MetricsBoard, upstreamStatus: UpstreamStatus? = nil, limits: AdminLimits = AdminLimits(),
                extraMetrics: @escaping @Sendable () -> [(String, String, String, Double)] = { [] }) {
        self.extraMetrics = extraMetrics
        precondition(limits.maxConnections > 0 && limits.maxRequestHeadBytes > 0, "admin limits must be positive")
        self.board = board
        self.upstreamStatus = upstreamStatus
        self.limits = limits
    }

    public func stop() { running.store(false, ordering: .releasing) }

    var isRunning: Bool { running.load(ordering: .acquiring) }

    /// The answer to what a client has sent so far; nil while its request head is incomplete.
    func answer(toReceived received: [UInt8]) -> [UInt8]? {
        switch AdminHTTP.scanHead(received, maxBytes: limits.maxRequestHeadBytes) {
        case .incomplete: nil
        case .tooLarge: AdminHTTP.response(431, "request head too large\n")
        case .complete(let length): respond(to: Array(received[..<length]))
        }
    }

    /// The response to one complete request head.
    func respond(to head: [UInt8]) -> [UInt8] {
        guard let request = AdminHTTP.requestLine(head) else { return AdminHTTP.response(400, "bad request\n") }
        guard request.method == "GET" || request.method == "HEAD" else {
            return AdminHTTP.response(405, "method not allowed\n", headers: [("Allow", "GET, HEAD")])
        }
        let withBody = request.method == "GET"
        switch request.path {
        case "/metrics":
            return AdminHTTP.response(200, metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8",
                                      includeBody: withBody)
        case "/health/live":
            return AdminHTTP.response(200, "ok\n", includeBody: withBody)
        case "/health/ready":
            let workers = board.allWorkersUp
            let upstream = upstreamStatus?().ready ?? true
            if workers && upstream { return AdminHTTP.response(200, "ready\n", includeBody: withBody) }
            return AdminHTTP.response(
                503, "not ready: workers \(workers ? "up" : "starting"), \(upstream ? "an upstream is up" : "no upstream up and answering OPTIONS")\n",
                includeBody: withBody)
        default:
            return AdminHTTP.response(404, "not found\n", includeBody: withBody)
        }
    }

    func metricsText() -> String {
        let upstreams = upstreamStatus?()
        var process: [(String, String, String, Double)] = [
            ("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.", startTime),
            ("sip_edge_workers", "gauge", "Worker threads.", Double(board.workerCount)),
            ("sip_edge_ready", "gauge", "1 while /health/ready answers 200 (workers up, an upstream answering OPTIONS).",
             board.allWorkersUp && (upstreams?.ready ?? true) ? 1 : 0),
        ]
        if let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 22 {
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            let cpu = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
            process.append(("process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.", cpu / ticks))
            let pages = Double(fields[21]) ?? 0
            process.append(("process_resident_memory_bytes", "gauge", "Resident memory, in bytes.",
                            pages * Double(sysconf(Int32(_SC_PAGESIZE)))))
        }
        if let heap = HeapStatistics.current() {
            process.append(("process_heap_allocated_bytes", "gauge",
                            "Bytes the program holds from the allocator (jemalloc stats.allocated).", Double(heap.allocated)))
            process.append(("process_heap_resident_bytes", "gauge",
                            "Bytes of pages the allocator holds, its caches included (jemalloc stats.resident).",
                            Double(heap.resident)))
        }
        process += extraMetrics()
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            process.append(("process_open_fds", "gauge", "Open file descriptors.", Double(descriptors.count)))
        }
        return PrometheusText.render(board.total(), process: process, upstreams: upstreams, workers: board.perWorker())
    }
}
