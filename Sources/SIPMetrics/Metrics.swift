import SIPLocks

/// Latency buckets of `sip_response_time_seconds` (upper bounds, seconds): in-proxy processing of one message.
public let latencyBucketBounds: [Double] = [
    0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
    0.005, 0.01,
]

/// What happened to a TCP/TLS connection: the `event` label of `sip_connection_events_total`, whose help text and
/// samples are made from this list (every event is exported, zero or not, so dashboards see the whole set).
public enum ConnectionEvent: String, Sendable, CaseIterable {
    /// A client connection was taken into the worker's table.
    case accepted
    /// Refused at accept: the worker's table (`tcp.max_connections`) was full.
    case refusedFull = "refused_full"
    /// Refused at accept: the source is over its rate limit or banned.
    case refusedRateLimited = "refused_rate_limited"
    /// Closed after `tcp.idle_timeout_s` without a byte.
    case idleClosed = "idle_closed"
    /// Closed because a message begun was not complete within `tcp.message_timeout_ms` (a slowloris).
    case messageTimeout = "message_timeout"
    /// Closed because the client's TLS handshake did not finish within `tls.handshake_timeout_ms`.
    case tlsHandshakeTimeout = "tls_handshake_timeout"
    /// Closed because the peer did not read: more than `tcp.max_send_queue` bytes waited for it.
    case slowReaderCut = "slow_reader_cut"
    /// The byte stream could not be framed (no Content-Length, too large): 400, then closed.
    case framingError = "framing_error"
    /// The TLS handshake failed (or no session could be made for it).
    case tlsHandshakeFailed = "tls_handshake_failed"
    /// A TLS record failed after the handshake.
    case tlsError = "tls_error"
    /// The peer closed the connection (FIN, reset or TLS close_notify).
    case peerClosed = "peer_closed"
    /// The kernel refused to queue a receive or a send on the connection.
    case receiveFailed = "receive_failed"
    case sendFailed = "send_failed"
    /// A pooled connection to an upstream became usable (connected, and for TLS the handshake done).
    case upstreamConnected = "upstream_connected"
    /// A pooled connection to an upstream could not be made (refused, timed out, handshake failed).
    case upstreamConnectFailed = "upstream_connect_failed"
    /// WebSocket (RFC 6455 §4): the upgrade was accepted (101), and the connection carries SIP frames from here.
    case webSocketOpened = "websocket_opened"
    /// The upgrade request was refused (400, 403, 404, 426, 431) and the connection closed.
    case webSocketHandshakeRefused = "websocket_handshake_refused"
    /// No complete upgrade request within `websocket.handshake_timeout_ms` (slowloris): cut.
    case webSocketHandshakeTimeout = "websocket_handshake_timeout"
    /// The peer broke the framing (unmasked frame, bad length, bad opcode; close 1002) or sent a message past the
    /// parse limit (close 1009).
    case webSocketProtocolError = "websocket_protocol_error"
    /// Idle for `websocket.ping_interval_s`, pinged, and no answer within another interval: a zombie, cut.
    case webSocketPingTimeout = "websocket_ping_timeout"
    /// The close handshake (RFC 6455 §5.5.1) ended the connection, whichever side began it.
    case webSocketClosed = "websocket_closed"

    /// Position in `allCases`: the index of this event's counter.
    public var ordinal: Int { Self.allCases.firstIndex(of: self)! }
}

/// The labels of `sip_messages_total`: method (or "response") and transport.
public struct MessageCountKey: Hashable, Sendable, Comparable {
    public var method: String
    public var transport: String

    public init(method: String, transport: String) {
        self.method = method
        self.transport = transport
    }

    public static func < (a: MessageCountKey, b: MessageCountKey) -> Bool {
        (a.method, a.transport) < (b.method, b.transport)
    }
}

/// One worker's counters as of its last publication: plain values, copied out of the worker a few times a second.
public struct WorkerSnapshot: Sendable {
    /// Requests by method name (known methods plus "other") and transport, responses under "response".
    public var messages: [MessageCountKey: Int] = [:]
    /// Refused or failed messages by error type (parse error codes and drop reasons).
    public var errors: [String: Int] = [:]
    /// Policy refusals by rule.
    public var violations: [String: Int] = [:]
    public var rateLimitRejections = 0
    public var forwarded = 0
    public var replied = 0
    /// Cumulative counts per `latencyBucketBounds` entry, then +Inf.
    public var latencyBuckets: [Int] = Array(repeating: 0, count: latencyBucketBounds.count + 1)
    public var latencySum: Double = 0
    public var latencyCount = 0
    /// Open connections by transport (tcp, tls): a gauge.
    public var connections: [String: Int] = [:]
    /// Connection life events, counted per ``ConnectionEvent``.
    public var connectionEvents: [ConnectionEvent: Int] = [:]
    /// Transaction mode: live transactions by kind (a gauge) and the layer's counters.
    public var transactionsActive: [String: Int] = [:]
    public var retransmissionsAbsorbed = 0
    /// Failovers by reason.
    public var failovers: [String: Int] = [:]
    public var transactionTimeouts = 0
    public var transactionsRefused = 0
    public var transactionFallbacks = 0
    public var transactionMessageBytes = 0
    /// Messages the worker handled; receive-buffer exhaustions; responses relayed by class (1xx first).
    public var handled = 0
    public var receiveBufferExhausted = 0
    public var relayedResponses = [Int](repeating: 0, count: 6)
    /// Per upstream (`HOST:PORT`).
    public var upstreams: [String: UpstreamSnapshot] = [:]
    public var capturesSent = 0
    public var capturesDropped = 0
    public var auditLinesLost = 0
    /// Share of the loop's time spent on work rather than waiting, over about the last second.
    public var busyRatio: Double = 0

    public init() {}
}

/// Bounds of `sip_upstream_response_seconds`, forward to first response: from a core on the same host to one
/// that is about to time out.
public let upstreamResponseBucketBounds: [Double] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/// One upstream's counters in a snapshot.
public struct UpstreamSnapshot: Sendable {
    public var requests = 0
    public var responsesByClass = [Int](repeating: 0, count: 6)
    /// Cumulative per `upstreamResponseBucketBounds`, then +Inf.
    public var responseBuckets = [Int](repeating: 0, count: upstreamResponseBucketBounds.count + 1)
    public var responseSeconds: Double = 0
    public var responseCount = 0

    public init() {}

    mutating func add(_ other: UpstreamSnapshot) {
        requests += other.requests
        for index in responsesByClass.indices { responsesByClass[index] += other.responsesByClass[index] }
        for index in responseBuckets.indices { responseBuckets[index] += other.responseBuckets[index] }
        responseSeconds += other.responseSeconds
        responseCount += other.responseCount
    }
}

/// Where workers publish their snapshots and the admin server reads them: the only shared state, touched a few
/// times a second per worker (never per message), behind an uncontended lock.
public final class MetricsBoard: Sendable {
    private let snapshots: Locked<[WorkerSnapshot?]>
    private let workersUp: Locked<Set<Int>>
    public let workerCount: Int

    public init(workers: Int) {
        workerCount = workers
        snapshots = Locked(Array(repeating: nil, count: workers))
        workersUp = Locked([])
    }

    public func publish(worker: Int, _ snapshot: WorkerSnapshot) {
        snapshots.withLock { $0[worker] = snapshot }
    }

    public func markUp(worker: Int, _ up: Bool) {
        workersUp.withLock { if up { $0.insert(worker) } else { $0.remove(worker) } }
    }

    public var allWorkersUp: Bool { workersUp.withLock { $0.count == workerCount } }

    /// The sum over workers.
    public func total() -> WorkerSnapshot {
        let all = snapshots.withLock { $0 }
        var total = WorkerSnapshot()
        for snapshot in all.compactMap({ $0 }) {
            total.messages.merge(snapshot.messages, uniquingKeysWith: +)
            total.errors.merge(snapshot.errors, uniquingKeysWith: +)
            total.violations.merge(snapshot.violations, uniquingKeysWith: +)
            total.rateLimitRejections += snapshot.rateLimitRejections
            total.forwarded += snapshot.forwarded
            total.replied += snapshot.replied
            for i in total.latencyBuckets.indices { total.latencyBuckets[i] += snapshot.latencyBuckets[i] }
            total.latencySum += snapshot.latencySum
            total.latencyCount += snapshot.latencyCount
            total.connections.merge(snapshot.connections, uniquingKeysWith: +)
            total.connectionEvents.merge(snapshot.connectionEvents, uniquingKeysWith: +)
            total.transactionsActive.merge(snapshot.transactionsActive, uniquingKeysWith: +)
            total.retransmissionsAbsorbed += snapshot.retransmissionsAbsorbed
            total.failovers.merge(snapshot.failovers, uniquingKeysWith: +)
            total.transactionTimeouts += snapshot.transactionTimeouts
            total.transactionsRefused += snapshot.transactionsRefused
            total.transactionFallbacks += snapshot.transactionFallbacks
            total.transactionMessageBytes += snapshot.transactionMessageBytes
            total.handled += snapshot.handled
            total.receiveBufferExhausted += snapshot.receiveBufferExhausted
            for index in total.relayedResponses.indices { total.relayedResponses[index] += snapshot.relayedResponses[index] }
            for (upstream, counts) in snapshot.upstreams { total.upstreams[upstream, default: UpstreamSnapshot()].add(counts) }
            total.capturesSent += snapshot.capturesSent
            total.capturesDropped += snapshot.capturesDropped
            total.auditLinesLost += snapshot.auditLinesLost
        }
        return total
    }

    /// Each worker's last snapshot (nil before its first), in worker order.
    public func perWorker() -> [WorkerSnapshot?] {
        snapshots.withLock { $0 }
    }
}

/// One upstream's health for `/metrics`: kept after it leaves the set, so its counters never go backwards.
public struct UpstreamStateSample: Sendable, Equatable {
    /// `HOST:PORT`.
    public var upstream: String
    public var isUp: Bool
    /// Still in the set (DNS can remove it).
    public var isMember: Bool
    public var becameUp = 0
    public var becameDown = 0

    public init(upstream: String, isUp: Bool, isMember: Bool) {
        self.upstream = upstream
        self.isUp = isUp
        self.isMember = isMember
    }
}

/// The upstream side of readiness and metrics.
public struct UpstreamReport: Sendable, Equatable {
    /// Some upstream is up and has answered a probe.
    public var ready: Bool
    public var upstreams: [UpstreamStateSample]

    public init(ready: Bool, upstreams: [UpstreamStateSample]) {
        self.ready = ready
        self.upstreams = upstreams
    }

    /// `sip_upstream_up` per member and `sip_upstream_state_changes_total` per upstream ever seen.
    public func render(into out: inout PrometheusText) {
        out.family("sip_upstream_up", type: "gauge",
                   help: "1 while the upstream is in rotation (its OPTIONS probes are answered), 0 while it is down.")
        for sample in upstreams where sample.isMember {
            out.sample("sip_upstream_up", [("upstream", sample.upstream)], sample.isUp ? 1 : 0)
        }
        out.family("sip_upstream_state_changes_total", type: "counter",
                   help: "Health state changes of an upstream, by the state it entered.")
        for sample in upstreams {
            out.sample("sip_upstream_state_changes_total", [("upstream", sample.upstream), ("state", "up")],
                       Double(sample.becameUp))
            out.sample("sip_upstream_state_changes_total", [("upstream", sample.upstream), ("state", "down")],
                       Double(sample.becameDown))
        }
    }
}

/// Prometheus text exposition (format 0.0.4).
public struct PrometheusText {
    private(set) var text = ""

    public init() {}

    public mutating func family(_ name: String, type: String, help: String) {
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
    }

    public mutating func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    public var output: String { text }

    static func escape(_ value: String) -> String {
        value.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"").replacingAll("\n", with: "\\n")
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    /// Renders the SIP families from `total`, with `transport` as the transport label.
    public static func render(_ total: WorkerSnapshot, process: [(String, String, String, Double)],
                              upstreams: UpstreamReport? = nil, workers: [WorkerSnapshot?] = []) -> String {
        var out = PrometheusText()
        upstreams?.render(into: &out)
        renderUpstreamTraffic(total, members: upstreams?.upstreams.map(\.upstream) ?? [], into: &out)
        renderWorkers(workers, into: &out)
        out.family("sip_responses_total", type: "counter",
                   help: "Responses sent toward clients (relayed from the core or the edge's own), by class.")
        for (index, count) in total.relayedResponses.enumerated() {
            out.sample("sip_responses_total", [("class", "\(index + 1)xx")], Double(count))
        }
        out.family("sip_capture_sent_total", type: "counter", help: "HEP captures handed to the kernel for the collector.")
        out.sample("sip_capture_sent_total", [], Double(total.capturesSent))
        out.family("sip_capture_dropped_total", type: "counter",
                   help: "HEP captures dropped: queue full (slow or absent collector), connection broken, or too large.")
        out.sample("sip_capture_dropped_total", [], Double(total.capturesDropped))
        out.family("sip_audit_lines_lost_total", type: "counter",
                   help: "Audit lines not written: over audit.lines_per_second, or the write failed (disk full).")
        out.sample("sip_audit_lines_lost_total", [], Double(total.auditLinesLost))
        out.family("sip_messages_total", type: "counter", help: "SIP messages received, by method (responses: response) and transport.")
        for (key, count) in total.messages.sorted(by: { $0.key < $1.key }) {
            out.sample("sip_messages_total", [("method", key.method), ("transport", key.transport)], Double(count))
        }
        out.family("sip_messages_errors_total", type: "counter", help: "Messages that failed to parse or could not be routed, by error type.")
        for (type, count) in total.errors.sorted(by: { $0.key < $1.key }) {
            out.sample("sip_messages_errors_total", [("error_type", type)], Double(count))
        }
        out.family("sip_security_violations_total", type: "counter", help: "Messages refused by the edge policy, by rule.")
        for (type, count) in total.violations.sorted(by: { $0.key < $1.key }) {
            out.sample("sip_security_violations_total", [("violation_type", type)], Double(count))
        }
        out.family("sip_rate_limit_rejections_total", type: "counter", help: "Requests refused or dropped by the per-source rate limiter.")
        out.sample("sip_rate_limit_rejections_total", [], Double(total.rateLimitRejections))
        out.family("sip_forwarded_total", type: "counter", help: "Messages forwarded.")
        out.sample("sip_forwarded_total", [], Double(total.forwarded))
        out.family("sip_local_replies_total", type: "counter", help: "Responses generated by sip-edge itself.")
        out.sample("sip_local_replies_total", [], Double(total.replied))
        out.family("sip_response_time_seconds", type: "histogram", help: "Time sip-edge spends on one message, receive to send.")
        for (index, bound) in latencyBucketBounds.enumerated() {
            out.sample("sip_response_time_seconds_bucket", [("le", String(bound))], Double(total.latencyBuckets[index]))
        }
        out.sample("sip_response_time_seconds_bucket", [("le", "+Inf")], Double(total.latencyBuckets.last!))
        out.sample("sip_response_time_seconds_sum", [], total.latencySum)
        out.sample("sip_response_time_seconds_count", [], Double(total.latencyCount))
        out.family("sip_active_connections", type: "gauge", help: "Open connections by transport.")
        let connections = total.connections.merging(["tcp": 0, "tls": 0]) { current, _ in current }
        for (transport, count) in connections.sorted(by: { $0.key < $1.key }) {
            out.sample("sip_active_connections", [("transport", transport)], Double(count))
        }
        out.family("sip_connection_events_total", type: "counter",
                   help: "TCP/TLS connection events: \(ConnectionEvent.allCases.map(\.rawValue).joined(separator: ", ")).")
        for event in ConnectionEvent.allCases {
            out.sample("sip_connection_events_total", [("event", event.rawValue)],
                       Double(total.connectionEvents[event, default: 0]))
        }
        out.family("sip_transactions_active", type: "gauge",
                   help: "Live transactions (proxy.mode transaction), by kind.")
        for kind in ["invite_server", "non_invite_server", "invite_client", "non_invite_client"] {
            out.sample("sip_transactions_active", [("kind", kind)], Double(total.transactionsActive[kind, default: 0]))
        }
        out.family("sip_retransmissions_absorbed_total", type: "counter",
                   help: "Client retransmissions answered by the edge instead of reaching the core.")
        out.sample("sip_retransmissions_absorbed_total", [], Double(total.retransmissionsAbsorbed))
        out.family("sip_failovers_total", type: "counter",
                   help: "Requests sent on to another upstream, by reason: timeout, status_503, transport.")
        for reason in ["timeout", "status_503", "transport"] {
            out.sample("sip_failovers_total", [("reason", reason)], Double(total.failovers[reason, default: 0]))
        }
        out.family("sip_transaction_timeouts_total", type: "counter",
                   help: "Transactions that ended unanswered (Timers B, F, H, C).")
        out.sample("sip_transaction_timeouts_total", [], Double(total.transactionTimeouts))
        out.family("sip_transactions_refused_total", type: "counter",
                   help: "New INVITEs answered 503 because the worker's transaction table was full.")
        out.sample("sip_transactions_refused_total", [], Double(total.transactionsRefused))
        out.family("sip_transactions_stateless_total", type: "counter",
                   help: "Requests forwarded statelessly in transaction mode because they could not be tracked.")
        out.sample("sip_transactions_stateless_total", [], Double(total.transactionFallbacks))
        out.family("sip_transaction_message_bytes", type: "gauge",
                   help: "Bytes of the transaction message stores holding copies of messages to resend.")
        out.sample("sip_transaction_message_bytes", [], Double(total.transactionMessageBytes))
        for (name, type, help, value) in process {
            out.family(name, type: type, help: help)
            out.sample(name, [], value)
        }
        return out.output
    }
}

extension PrometheusText {
    /// Per upstream: requests, responses by class, response time. Every configured member appears (at 0) so a
    /// dashboard sees it before its first request; upstreams that left keep their counts.
    static func renderUpstreamTraffic(_ total: WorkerSnapshot, members: [String], into out: inout PrometheusText) {
        var upstreams = total.upstreams
        for member in members where upstreams[member] == nil { upstreams[member] = UpstreamSnapshot() }
        let sorted = upstreams.sorted { $0.key < $1.key }
        out.family("sip_upstream_requests_total", type: "counter", help: "Requests sent to an upstream.")
        for (upstream, counts) in sorted {
            out.sample("sip_upstream_requests_total", [("upstream", upstream)], Double(counts.requests))
        }
        out.family("sip_upstream_responses_total", type: "counter", help: "Responses from an upstream, by class.")
        for (upstream, counts) in sorted {
            for (index, count) in counts.responsesByClass.enumerated() {
                out.sample("sip_upstream_responses_total", [("upstream", upstream), ("class", "\(index + 1)xx")],
                           Double(count))
            }
        }
        out.family("sip_upstream_response_seconds", type: "histogram",
                   help: "Time from a client request's arrival to the first response from the upstream.")
        for (upstream, counts) in sorted {
            for (index, bound) in upstreamResponseBucketBounds.enumerated() {
                out.sample("sip_upstream_response_seconds_bucket", [("upstream", upstream), ("le", String(bound))],
                           Double(counts.responseBuckets[index]))
            }
            out.sample("sip_upstream_response_seconds_bucket", [("upstream", upstream), ("le", "+Inf")],
                       Double(counts.responseBuckets.last!))
            out.sample("sip_upstream_response_seconds_sum", [("upstream", upstream)], counts.responseSeconds)
            out.sample("sip_upstream_response_seconds_count", [("upstream", upstream)], Double(counts.responseCount))
        }
    }

    /// Per worker: messages, busy ratio, receive-buffer exhaustion (workers that have not published yet are left out).
    static func renderWorkers(_ workers: [WorkerSnapshot?], into out: inout PrometheusText) {
        let published = workers.enumerated().compactMap { index, snapshot in snapshot.map { (String(index), $0) } }
        out.family("sip_worker_messages_total", type: "counter", help: "Messages a worker handled.")
        for (worker, snapshot) in published {
            out.sample("sip_worker_messages_total", [("worker", worker)], Double(snapshot.handled))
        }
        out.family("sip_worker_busy_ratio", type: "gauge",
                   help: "Share of a worker loop's time spent working rather than waiting, over the last second.")
        for (worker, snapshot) in published {
            out.sample("sip_worker_busy_ratio", [("worker", worker)], snapshot.busyRatio)
        }
        out.family("sip_worker_receive_buffer_exhausted_total", type: "counter",
                   help: "Times a worker's io_uring had no free receive buffer (datagrams waited in the socket queue).")
        for (worker, snapshot) in published {
            out.sample("sip_worker_receive_buffer_exhausted_total", [("worker", worker)],
                       Double(snapshot.receiveBufferExhausted))
        }
    }
}

extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var out = ""
        for character in self {
            if character == target { out += replacement } else { out.append(character) }
        }
        return out
    }
}
