public import SIPMetrics
public import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSecurity

/// Why a message was lost in the transport itself (not refused by policy, not dropped by the proxy core). Raw
/// values are the `error_type` labels of `sip_messages_errors_total`, beside the parse error codes and
/// ``DropReason``s.
public enum TransportError: String, Sendable, CaseIterable {
    /// A datagram larger than a receive buffer: its tail was cut by the kernel, so it is dropped unread.
    case truncated
    /// The kernel refused a send (or the ring and the fallback both had no room).
    case sendFailed = "send_failed"
}

/// Per-worker counters: plain integers written only by the worker's thread, indexed by the enums whose raw values
/// are their metric labels.
public struct WorkerCounters: Sendable {
    public var received = 0
    public var forwarded = 0
    public var replied = 0
    public var parseErrors = 0
    public var truncated = 0
    public var keepalives = 0
    public var sendFailures = 0
    /// Times the kernel had no free receive buffer (io_uring path): datagrams waited in the socket queue.
    public var receiveBufferExhaustion = 0
    /// Refusals by rule, indexed by `SecurityRule.ordinal`.
    public var violations = [Int](repeating: 0, count: SecurityRule.allCases.count)
    /// Parse errors by code, indexed like `SIPParseError.Code.allCases`.
    public var parseErrorsByCode = [Int](repeating: 0, count: SIPParseError.Code.allCases.count)
    /// Requests by transport (indexed like `TransportKind`) and method (indexed like `SIPMethod.Known.allCases`),
    /// and responses by transport.
    /// The counts every message touches are held in line (`InlineArray`): counting is one add, where an array
    /// element cost a uniqueness check (a call into the Swift runtime) per message and level.
    public var requestsByMethod = InlineArray<5, InlineArray<15, Int>>(repeating: .init(repeating: 0))
    public var responses = InlineArray<5, Int>(repeating: 0)
    /// In-proxy time per message, per `latencyBucketBounds` (not cumulative; the last is +Inf).
    public var latencyBuckets = InlineArray<14, Int>(repeating: 0)
    public var latencyNanoseconds: UInt64 = 0
    /// `latencyBucketBounds` in nanoseconds, read once: the global array costs a lazy-initialisation check and a
    /// conversion to seconds per message.
    private var latencyBoundsNanoseconds = InlineArray<13, UInt64>(repeating: 0)
    /// Messages the proxy core dropped, by reason.
    public var dropped = [Int](repeating: 0, count: DropReason.allCases.count)
    /// Open connections by transport (indexed like `TransportKind`), and connection events by
    /// `ConnectionEvent.ordinal`.
    public var openConnections = [Int](repeating: 0, count: TransportKind.allCases.count)
    public var connectionEvents = [Int](repeating: 0, count: ConnectionEvent.allCases.count)
    /// The transaction layer's (transaction mode only).
    public var transactions = Transactions()
    /// Messages handed to the pipeline (parsed or not).
    public var handled = 0
    /// Responses relayed, by class (index 0 = 1xx ... 5 = 6xx).
    public var relayedResponses = InlineArray<6, Int>(repeating: 0)
    /// Per upstream: requests sent, responses by class, time from forward to first response. An array searched
    /// in order (a few upstreams; comparing three words beats hashing an address twice per call leg).
    public var upstreams: [(address: EndpointAddress, tally: UpstreamTally)] = []
    /// HEP capture: captures handed to the kernel, and those dropped (queue full, link broken, too large).
    public var capturesSent = 0
    public var capturesDropped = 0
    /// Audit lines not written: over `audit.lines_per_second`, or the write failed (a full disk).
    public var auditLinesLost = 0

    /// One upstream's counts.
    public struct UpstreamTally: Sendable {
        public var requests = 0
        public var responsesByClass = InlineArray<6, Int>(repeating: 0)
        /// Per `upstreamResponseBucketBounds` (not cumulative; the last is +Inf).
        public var responseBuckets = InlineArray<13, Int>(repeating: 0)
        public var responseNanoseconds: UInt64 = 0

        public init() {
            precondition(responseBuckets.count == upstreamResponseBucketBounds.count + 1)
        }
    }

    /// What the transaction layer counts.
    public struct Transactions: Sendable {
        /// Live transactions by `TransactionMachine.Kind` raw value: a gauge.
        public var active = [Int](repeating: 0, count: 4)
        /// Client retransmissions answered (or ignored) here instead of reaching the core.
        public var retransmissionsAbsorbed = 0
        /// Requests sent to another upstream, by ``FailoverReason`` (indexed like `allCases`).
        public var failovers = [Int](repeating: 0, count: FailoverReason.allCases.count)
        /// Transactions that ended without an answer (Timers B, F, H, C).
        public var timeouts = 0
        /// New INVITEs answered 503 because the table was full.
        public var refused = 0
        /// Requests forwarded statelessly because they could not be tracked (table or message store full, key
        /// too long).
        public var statelessFallbacks = 0
        /// Message store bytes in use (a gauge).
        public var messageBytes = 0
        /// The layer's own share of ``WorkerCounters/forwarded``, ``WorkerCounters/replied`` and drops (kept apart
        /// so that the layer never holds the pipeline's counters while the sink writes them).
        public var forwarded = 0
        public var replied = 0
        public var dropped = [Int](repeating: 0, count: DropReason.allCases.count)

        public init() {}
    }

    public init() {
        precondition(requestsByMethod.count == TransportKind.allCases.count
            && requestsByMethod[0].count == SIPMethod.Known.allCases.count && responses.count == TransportKind.allCases.count)
        precondition(latencyBoundsNanoseconds.count == latencyBucketBounds.count
            && latencyBuckets.count == latencyBucketBounds.count + 1)
        for (index, bound) in latencyBucketBounds.enumerated() {
            latencyBoundsNanoseconds[index] = UInt64((bound * 1e9).rounded())
        }
    }

    mutating func count(_ event: ConnectionEvent) { connectionEvents[event.ordinal] += 1 }

    mutating func count(_ reason: DropReason) { dropped[Self.index(of: reason)] += 1 }

    func count(of reason: DropReason) -> Int { dropped[Self.index(of: reason)] }

    static func index(of reason: DropReason) -> Int { DropReason.allCases.firstIndex(of: reason)! }

    /// Counts one message's in-proxy time.
    mutating func recordLatency(nanoseconds: UInt64) {
        latencyNanoseconds &+= nanoseconds
        var index = 0
        while index < latencyBoundsNanoseconds.count && nanoseconds > latencyBoundsNanoseconds[index] { index += 1 }
        latencyBuckets[index] += 1
    }

    /// Counts a response from `upstream` (and, when it answers a request the edge timed, how long it took).
    mutating func countUpstreamResponse(from upstream: EndpointAddress, status: UInt16, elapsedNanoseconds: UInt64?) {
        let responseClass = min(max(Int(status / 100), 1), 6) - 1
        let slot = tallySlot(upstream)
        upstreams[slot].tally.responsesByClass[responseClass] += 1
        guard let elapsedNanoseconds else { return }
        let seconds = Double(elapsedNanoseconds) / 1e9
        var index = 0
        while index < upstreamResponseBucketBounds.count && seconds > upstreamResponseBucketBounds[index] { index += 1 }
        upstreams[slot].tally.responseBuckets[index] += 1
        upstreams[slot].tally.responseNanoseconds &+= elapsedNanoseconds
    }

    /// The index of `upstream`'s tally, added on first use.
    private mutating func tallySlot(_ upstream: EndpointAddress) -> Int {
        // Elements borrowed: reading `upstreams[index].address` copied the tuple, tally arrays and all, per message.
        if let found = upstreams.firstIndex(where: { $0.address == upstream }) { return found }
        // Bounded: DNS may rotate addresses for years; past 256, newcomers share the last slot's counts.
        guard upstreams.count < 256 else { return upstreams.count - 1 }
        upstreams.append((upstream, UpstreamTally()))
        return upstreams.count - 1
    }

    /// Counts a message that left: a request to an upstream, or a response (relayed or the edge's own) by class.
    /// From the bytes' first line, so both proxy modes and every sender are counted alike.
    mutating func countSent(_ bytes: PacketBytes, toUpstream upstream: EndpointAddress?) {
        let isResponse = bytes.count > 12 && bytes[0] == UInt8(ascii: "S") && bytes[1] == UInt8(ascii: "I")
            && bytes[2] == UInt8(ascii: "P") && bytes[3] == UInt8(ascii: "/")
        if isResponse {
            let digit = Int(bytes[8]) - 0x30
            if digit >= 1 && digit <= 6 { relayedResponses[digit - 1] += 1 }
        } else if let upstream {
            upstreams[tallySlot(upstream)].tally.requests += 1
        }
    }

    /// The snapshot published for the metrics endpoint.
    public func snapshot() -> WorkerSnapshot {
        var snapshot = WorkerSnapshot()
        snapshot.handled = handled
        snapshot.receiveBufferExhausted = receiveBufferExhaustion
        snapshot.relayedResponses = Array(counts: relayedResponses)
        snapshot.capturesSent = capturesSent
        snapshot.capturesDropped = capturesDropped
        snapshot.auditLinesLost = auditLinesLost
        for (address, tally) in upstreams {
            var sample = UpstreamSnapshot()
            sample.requests = tally.requests
            sample.responsesByClass = Array(counts: tally.responsesByClass)
            var cumulative = 0
            for index in tally.responseBuckets.indices {
                cumulative += tally.responseBuckets[index]
                sample.responseBuckets[index] = cumulative
            }
            sample.responseCount = cumulative
            sample.responseSeconds = Double(tally.responseNanoseconds) / 1e9
            snapshot.upstreams[address.description] = sample
        }
        for transport in TransportKind.allCases {
            let counts = requestsByMethod[Int(transport.rawValue)]
            for (index, method) in SIPMethod.Known.allCases.enumerated() where counts[index] > 0 {
                snapshot.messages[MessageCountKey(method: method == .extension ? "other" : method.name,
                                                  transport: "\(transport)")] = counts[index]
            }
            if responses[Int(transport.rawValue)] > 0 {
                snapshot.messages[MessageCountKey(method: "response", transport: "\(transport)")] =
                    responses[Int(transport.rawValue)]
            }
            if transport.isStream {
                snapshot.connections["\(transport)"] = openConnections[Int(transport.rawValue)]
            }
        }
        for (index, code) in SIPParseError.Code.allCases.enumerated() where parseErrorsByCode[index] > 0 {
            snapshot.errors[code.rawValue] = parseErrorsByCode[index]
        }
        for (index, reason) in DropReason.allCases.enumerated() where dropped[index] > 0 {
            snapshot.errors[reason.rawValue] = dropped[index]
        }
        if truncated > 0 { snapshot.errors[TransportError.truncated.rawValue] = truncated }
        if sendFailures > 0 { snapshot.errors[TransportError.sendFailed.rawValue] = sendFailures }
        for rule in SecurityRule.allCases where violations[rule.ordinal] > 0 && rule != .malformed {
            snapshot.violations[rule.rawValue] = violations[rule.ordinal]
        }
        snapshot.rateLimitRejections = violations[SecurityRule.rateLimited.ordinal] + violations[SecurityRule.banned.ordinal]
        snapshot.forwarded = forwarded
        snapshot.replied = replied
        var cumulative = 0
        for index in latencyBuckets.indices {
            cumulative += latencyBuckets[index]
            snapshot.latencyBuckets[index] = cumulative
        }
        snapshot.latencyCount = cumulative
        snapshot.latencySum = Double(latencyNanoseconds) / 1e9
        for event in ConnectionEvent.allCases where connectionEvents[event.ordinal] > 0 {
            snapshot.connectionEvents[event] = connectionEvents[event.ordinal]
        }
        for (kind, label) in zip(0..., ["invite_server", "non_invite_server", "invite_client", "non_invite_client"])
        where transactions.active[kind] > 0 {
            snapshot.transactionsActive[label] = transactions.active[kind]
        }
        snapshot.retransmissionsAbsorbed = transactions.retransmissionsAbsorbed
        for (index, reason) in FailoverReason.allCases.enumerated() where transactions.failovers[index] > 0 {
            snapshot.failovers[reason.rawValue] = transactions.failovers[index]
        }
        snapshot.transactionTimeouts = transactions.timeouts
        snapshot.transactionsRefused = transactions.refused
        snapshot.transactionFallbacks = transactions.statelessFallbacks
        snapshot.transactionMessageBytes = transactions.messageBytes
        return snapshot
    }
}

extension Array where Element == Int {
    /// The counts of an in-line array, for a snapshot.
    init<let count: Int>(counts: InlineArray<count, Int>) {
        self = counts.indices.map { counts[$0] }
    }
}
