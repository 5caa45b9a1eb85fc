import Foundation
public import SIPBytes
public import SIPMetrics
import SIPParsing
public import SIPUring
import Synchronization

/// The admin HTTP server on its own thread: `/metrics` (Prometheus text), `/health/live`, `/health/ready`.
/// Bounded in every way: one request per connection, an 8 KiB request head, one second to send it.
public final class AdminServer: Sendable {
    private let board: MetricsBoard
    private let probe: UpstreamProbe?
    /// Upstreams reached over pooled TCP/TLS connections: up means the workers hold at least one connection.
    private let pooledUpstream: Bool
    private let startTime = Date().timeIntervalSince1970
    private let running = Atomic<Bool>(true)

    /// `probe`: OPTIONS over UDP decide whether the upstream answers. `pooledUpstream`: the workers' pooled
    /// connections decide instead (a core reached over TCP/TLS need not listen on UDP at all).
    public init(board: MetricsBoard, probe: UpstreamProbe?, pooledUpstream: Bool = false) {
        self.board = board
        self.probe = pooledUpstream ? nil : probe
        self.pooledUpstream = pooledUpstream
    }

    /// Whether an upstream is reachable, and how that was decided.
    private var upstreamState: (up: Bool, how: String) {
        if pooledUpstream { return (board.total().upstreamConnections > 0, "connected") }
        return (probe?.isUpstreamAnswering ?? true, "answering OPTIONS")
    }

    /// Serves on `listener` until ``stop()``; call on a dedicated thread.
    public func serve(_ listener: TCPListener) {
        while running.load(ordering: .acquiring) {
            guard let connection = listener.accept(timeoutMilliseconds: 200) else { continue }
            guard let head = connection.readRequestHead() else { continue }
            connection.write(respond(to: head))
        }
    }

    public func stop() { running.store(false, ordering: .releasing) }

    func respond(to head: [UInt8]) -> [UInt8] {
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1.") else { return Self.response(400, "bad request\n") }
        guard parts[0] == "GET" || parts[0] == "HEAD" else { return Self.response(405, "method not allowed\n") }
        let path = parts[1].split(separator: "?").first.map(String.init) ?? ""
        switch path {
        case "/metrics":
            return Self.response(200, metricsText(), contentType: "text/plain; version=0.0.4; charset=utf-8")
        case "/health/live":
            return Self.response(200, "ok\n")
        case "/health/ready":
            let workers = board.allWorkersUp
            let upstream = upstreamState
            if workers && upstream.up { return Self.response(200, "ready\n") }
            return Self.response(503, "not ready: workers \(workers ? "up" : "starting"), upstream \(upstream.up ? "" : "not ")\(upstream.how)\n")
        default:
            return Self.response(404, "not found\n")
        }
    }

    func metricsText() -> String {
        var process: [(String, String, String, Double)] = [
            ("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch, in seconds.", startTime),
            ("sip_edge_workers", "gauge", "Worker threads.", Double(board.workerCount)),
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
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            process.append(("process_open_fds", "gauge", "Open file descriptors.", Double(descriptors.count)))
        }
        if probe != nil || pooledUpstream {
            process.append(("sip_upstream_up", "gauge",
                            "1 when an upstream answered OPTIONS recently (UDP) or a pooled connection is up (TCP/TLS).",
                            upstreamState.up ? 1 : 0))
        }
        return PrometheusText.render(board.total(), process: process)
    }

    static func response(_ status: Int, _ body: String, contentType: String = "text/plain; charset=utf-8") -> [UInt8] {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                      503: "Service Unavailable"][status] ?? "Error"
        let bytes = Array(body.utf8)
        return Array(("HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(bytes.count)\r\n"
            + "Connection: close\r\n\r\n").utf8) + bytes
    }
}

/// Sends OPTIONS to every upstream at an interval and remembers when one last answered: readiness means the
/// core behind us is alive, not just that our sockets are bound.
public final class UpstreamProbe: Sendable {
    private let upstreams: [EndpointAddress]
    private let intervalMilliseconds: Int
    private let lastAnswer = Mutex<Date?>(nil)
    private let running = Atomic<Bool>(true)

    public init(upstreams: [EndpointAddress], intervalMilliseconds: Int) {
        self.upstreams = upstreams
        self.intervalMilliseconds = intervalMilliseconds
    }

    /// True when some upstream answered within three intervals.
    public var isUpstreamAnswering: Bool {
        guard let last = lastAnswer.withLock({ $0 }) else { return false }
        return Date().timeIntervalSince(last) * 1_000 < Double(3 * intervalMilliseconds)
    }

    public func stop() { running.store(false, ordering: .releasing) }

    /// Probes until ``stop()``; call on a dedicated thread.
    public func run() {
        guard let anyV4 = EndpointAddress.parse("0.0.0.0", port: 0),
            let socket = try? UDPSocket(binding: upstreams.first?.family == .ipv6
                ? EndpointAddress.parse("::", port: 0)! : anyV4, reusePort: false),
            let parser = try? SIPParser(),
            let readiness = try? ReadinessPoll([socket])
        else { return }
        let batch = DatagramBatch(capacity: 8, bufferSize: 8_192)
        var sequence = 0
        while running.load(ordering: .acquiring) {
            sequence += 1
            let callID = "sip-edge-probe-\(getpid())-\(sequence)"
            for upstream in upstreams {
                socket.send(Self.options(to: upstream, from: socket.localAddress, callID: callID), to: upstream)
            }
            let deadline = Date().addingTimeInterval(Double(intervalMilliseconds) / 1_000)
            while Date() < deadline && running.load(ordering: .acquiring) {
                guard readiness.wait(timeoutMilliseconds: 100) != 0 else { continue }
                let count = batch.receive(from: socket)
                for i in 0..<count {
                    let answered = batch.withDatagram(i) { bytes, _ -> Bool in
                        guard let message = try? parser.parse(bytes), !message.isRequest else { return false }
                        return message.string(message.callID) == callID
                    }
                    if answered { lastAnswer.withLock { $0 = Date() } }
                }
            }
        }
    }

    static func options(to upstream: EndpointAddress, from local: EndpointAddress, callID: String) -> [UInt8] {
        var host: [UInt8] = []
        upstream.appendURIHost(to: &host)
        let target = String(decoding: host, as: UTF8.self) + ":\(upstream.port)"
        return Array(("OPTIONS sip:\(target) SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:\(local.port);branch=z9hG4bK\(callID);rport\r\n"
            + "Max-Forwards: 70\r\nFrom: <sip:sip-edge@localhost>;tag=probe\r\nTo: <sip:\(target)>\r\n"
            + "Call-ID: \(callID)\r\nCSeq: 1 OPTIONS\r\nUser-Agent: sip-edge health probe\r\nContent-Length: 0\r\n\r\n").utf8)
    }
}
