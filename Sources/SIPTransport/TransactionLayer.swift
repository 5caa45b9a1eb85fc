import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSettings
import SIPTransactions

/// Why a request went to another upstream. Raw values are the `reason` labels of `sip_failovers_total`.
public enum FailoverReason: String, Sendable, CaseIterable {
    /// No response within `transactions.failover_timeout_ms` (or the transaction's own Timer B/F).
    case timeout
    /// The upstream answered 503 (RFC 3261 §16.7 step 6: not relayed; the next upstream is tried).
    case status503 = "status_503"
    /// The request could not be sent (no pooled connection, the send failed).
    case transport

    /// Index into ``WorkerCounters/Transactions/failovers`` (its `allCases` order), without building `allCases`.
    var ordinal: Int {
        switch self {
        case .timeout: 0
        case .status503: 1
        case .transport: 2
        }
    }
}

/// A worker's transaction-stateful proxy (`proxy.mode: transaction`, RFC 3261 §16 with §17 transactions) in front
/// of the stateless core: new requests from clients become a server transaction (INVITE: `100 Trying` at once)
/// and a client transaction toward the upstream the stateless choice picked. Client retransmissions are absorbed
/// (the last response goes back, nothing reaches the core); over UDP the edge retransmits toward the core itself;
/// an upstream that does not answer within `failover_timeout_ms`, answers 503 or cannot be sent to is replaced by
/// the next one in rendezvous order with a new branch (serial forking), up to `max_attempts`; then the client gets
/// 408, or 500 when a 503 was the only answer. CANCEL is answered here and sent on the branch in use (§16.10); the
/// ACK for a non-2xx final response is the edge's own on each side.
///
/// In-dialog requests, 2xx ACKs and requests from the core are left to the stateless rules (the caller forwards
/// them), as are responses that match no transaction.
///
/// Everything is preallocated for `transactions.max_per_worker` transactions: the map, the records, the timer
/// wheel (three timers per record) and the message store. Nothing here locks: one layer per worker, on its thread.
final class TransactionLayer {
    private let settings: TransactionSettings
    private let timers: TransactionTimers
    private let proxy: StatelessProxy
    private var map: TransactionMap
    private var wheel: TimerWheel
    private var store: MessageStore
    private var records: [TransactionRecord]
    private var freeHead: Int32
    /// A stored message copied out to be sent or read; and what is built from it. Reused.
    private var stored: [UInt8] = []
    /// The proxy's output as an array (the layer stores and scans arrays), reused message after message.
    private var outputCopy: [UInt8] = []
    private var built: [UInt8] = []
    private var toLine: [UInt8] = []
    /// What the layer counts; the pipeline publishes it with its own counters.
    private(set) var counters = WorkerCounters.Transactions()

    init(settings: TransactionSettings, proxy: StatelessProxy, now: UInt64) {
        self.settings = settings
        var timers = TransactionTimers()
        timers.t1 = settings.t1Milliseconds
        timers.t2 = settings.t2Milliseconds
        timers.t4 = settings.t4Milliseconds
        self.timers = timers
        self.proxy = proxy
        let capacity = settings.maxPerWorker
        map = TransactionMap(capacity: capacity)
        wheel = TimerWheel(capacity: capacity * TimerSlot.count, now: now)
        store = MessageStore(blocks: max(1, settings.messageMemoryMegabytes << 20 / 512), blockSize: 512)
        records = (0..<capacity).map { TransactionRecord(nextFree: $0 + 1 < capacity ? Int32($0 + 1) : -1) }
        freeHead = 0
        stored.reserveCapacity(70_000)
        built.reserveCapacity(70_000)
        toLine.reserveCapacity(1_024)
    }

    /// Bytes of the message store holding messages now (whole blocks).
    var messageBytesInUse: Int { (store.capacityBlocks - store.freeBlocks) * store.blockSize }

    /// Transactions in the map (waiting for an answer, or absorbing retransmissions until their timer ends).
    var liveTransactions: Int { map.count }

    /// When the next timer is due (milliseconds, monotonic), if any: the worker sleeps no longer.
    var nextDeadline: UInt64? { wheel.nextDeadline }

    // MARK: Requests from clients

    /// A request from the public side that passed policy. False: not the layer's (an in-dialog request, a 2xx
    /// ACK, a CANCEL for no transaction here, a key too long, the table full for a non-INVITE): forward it
    /// statelessly.
    func handleRequest<Sink: FlowSink>(_ message: SIPMessage, from flow: Flow, now: UInt64, sink: Sink) -> Bool {
        switch message.method.known {
        case .ack:
            return absorbAck(message, now: now)
        case .cancel:
            return cancel(message, from: flow, now: now, sink: sink)
        default:
            break
        }
        guard message.toTag == nil, let key = TransactionKey.server(for: message) else { return false }
        let isInvite = message.method.known == .invite
        guard let index = allocate() else {
            // No record free, but a retransmission of a live transaction still matches.
            if let value = map.find(key) {
                absorbRetransmission(of: Int(value), now: now, sink: sink)
                return true
            }
            return refuseFull(message, isInvite: isInvite, from: flow, sink: sink)
        }
        switch map.insert(key, value: UInt32(index)) {
        case .inserted(let handle):
            records[index].mapHandle = handle
        case .exists(_, let value):
            release(index)
            absorbRetransmission(of: Int(value), now: now, sink: sink)
            return true
        case .full:
            release(index)
            return refuseFull(message, isInvite: isInvite, from: flow, sink: sink)
        case .keyTooLong:
            release(index)
            counters.statelessFallbacks += 1
            return false
        }
        let kind: TransactionMachine.Kind = isInvite ? .inviteServer : .nonInviteServer
        records[index].machine = TransactionMachine.start(kind, reliable: flow.transport.isStream, timers: timers).0
        records[index].flow = flow
        counters.active[Int(kind.rawValue)] += 1

        switch proxy.process(message, from: flow, attempt: ForwardAttempt(), preflighted: true) {
        case .forward(let upstream):
            records[index].routingHash = proxy.routingHash(for: message)
            records[index].attempts = 1
            if let member = proxy.upstreams.index(of: upstream.address) { records[index].excluded = 1 << UInt64(member) }
            guard let (base, client) = track(server: index, to: upstream, method: message.method.known, now: now) else {
                // Not trackable (store or table full): this one goes statelessly.
                end(index)
                counters.statelessFallbacks += 1
                if sink.deliver(proxy.output, to: upstream) { counters.forwarded += 1 }
                return true
            }
            records[index].branch = base
            if isInvite {
                startTimer(.c, after: settings.timerCMilliseconds, record: index, now: now)
            }
            let sent = sink.deliver(proxy.output, to: upstream)
            if isInvite {
                // The client stops retransmitting at once (RFC 3261 §16.2; §17.2.1).
                proxy.buildReply(to: message, status: 100, reason: "Trying", addTag: false)
                if sink.deliver(proxy.output, to: flow) { counters.replied += 1 }
                records[index].message = store.store(outputArray())
            }
            if sent {
                counters.forwarded += 1
            } else {
                failOver(server: index, from: client, reason: .transport, now: now, sink: sink)
            }
        case .reply(_, let destination):
            // A local refusal (483, 503 none up...) is stateless: a retransmission gets the same answer again.
            end(index)
            if sink.deliver(proxy.output, to: destination) { counters.replied += 1 }
        case .drop(let reason):
            end(index)
            counters.dropped[WorkerCounters.index(of: reason)] += 1
        }
        return true
    }

    /// The table is full: a new INVITE gets 503 with Retry-After (existing transactions are never evicted); other
    /// requests go statelessly.
    private func refuseFull<Sink: FlowSink>(_ message: SIPMessage, isInvite: Bool, from flow: Flow, sink: Sink) -> Bool {
        guard isInvite else {
            counters.statelessFallbacks += 1
            return false
        }
        counters.refused += 1
        proxy.buildReply(to: message, status: 503, reason: "Service Unavailable", detail: "transaction table full",
                         retryAfter: proxy.configuration.unavailableRetryAfterSeconds)
        if sink.deliver(proxy.output, to: flow) { counters.replied += 1 }
        return true
    }

    private func absorbRetransmission<Sink: FlowSink>(of server: Int, now: UInt64, sink: Sink) {
        counters.retransmissionsAbsorbed += 1
        guard let output = records[server].machine?.handle(.requestRetransmitted) else { return }
        if output.transmit == .lastResponse { resend(server, sink: sink) }
        apply(output, to: server, now: now)
    }

    /// The client's ACK for a non-2xx final response the edge sent it: the INVITE server transaction takes it
    /// (RFC 3261 §17.2.1). Any other ACK (a 2xx ACK, even one reusing the INVITE's branch) goes on statelessly.
    private func absorbAck(_ message: SIPMessage, now: UInt64) -> Bool {
        guard let key = TransactionKey.server(for: message), let value = map.find(key) else { return false }
        let server = Int(value)
        guard let machine = records[server].machine, machine.kind == .inviteServer,
            machine.state == .completed || machine.state == .confirmed else { return false }
        if let output = records[server].machine?.handle(.ack) { apply(output, to: server, now: now) }
        return true
    }

    /// RFC 3261 §16.10: a CANCEL for an INVITE in progress here is answered 200 by the edge and sent on to the
    /// upstream of the branch in use, once that branch has had a provisional response (§9.1); until then it waits.
    private func cancel<Sink: FlowSink>(_ message: SIPMessage, from flow: Flow, now: UInt64, sink: Sink) -> Bool {
        guard let key = TransactionKey.cancelTarget(for: message), let value = map.find(key) else { return false }
        let server = Int(value)
        guard let machine = records[server].machine, machine.kind == .inviteServer else { return false }
        proxy.buildReply(to: message, status: 200, reason: "OK")
        if sink.deliver(proxy.output, to: flow) { counters.replied += 1 }
        guard machine.state == .proceeding, !records[server].flags.contains(.cancelRequested) else { return true }
        records[server].flags.insert(.cancelRequested)
        if let client = currentClient(of: server), records[client].machine?.state == .proceeding {
            sendCancel(server: server, branch: client, now: now, sink: sink)
        }
        return true
    }

    // MARK: Responses from upstreams

    /// A response from an upstream. False: it matches no transaction (a response to an in-dialog request, a late
    /// 2xx): forward it statelessly.
    func handleResponse<Sink: FlowSink>(_ message: SIPMessage, from flow: Flow, now: UInt64, sink: Sink) -> Bool {
        guard let status = message.statusLine.map({ Int($0.statusCode) }), let key = TransactionKey.client(for: message),
            let value = map.find(key) else { return false }
        let client = Int(value)
        guard let output = records[client].machine?.handle(.response(status: status)) else { return false }
        // Any answer shows the upstream is alive: no failover for this branch any more.
        cancelTimer(.proxy, of: client)
        if output.transmit == .ack { sendAck(client, for: message, sink: sink) }
        apply(output, to: client, now: now)
        let flags = records[client].flags
        // The CANCEL's own responses are hop by hop (the client had its 200 from the edge); a 100 is too (§16.7).
        guard output.passOn, !flags.contains(.hopByHop), status != 100 else { return true }
        guard let server = currentServer(of: client) else {
            // A branch given up on: only a 2xx must still reach the client (§16.7 step 5); the rest is absorbed.
            return !(200..<300).contains(status)
        }
        if status == 503, !records[server].flags.contains(.cancelRequested) {
            records[server].flags.insert(.got503)
            failOver(server: server, from: client, reason: .status503, now: now, sink: sink)
            return true
        }
        if status < 200, records[server].machine?.kind == .inviteServer {
            if records[server].flags.contains(.cancelRequested), !records[server].flags.contains(.cancelSent) {
                sendCancel(server: server, branch: client, now: now, sink: sink)
            }
            startTimer(.c, after: settings.timerCMilliseconds, record: server, now: now)
        } else if status >= 200 {
            cancelTimer(.proxy, of: server)
        }
        switch proxy.process(message, from: flow) {
        case .forward(let destination):
            respond(server, status: status, bytes: outputArray(), to: destination, now: now, sink: sink)
        case .drop(let reason):
            counters.dropped[WorkerCounters.index(of: reason)] += 1
        case .reply:
            break
        }
        return true
    }

    // MARK: Timers

    /// Fires every timer due at `now`.
    func fireTimers<Sink: FlowSink>(now: UInt64, sink: Sink) {
        while let payload = wheel.popExpired(now: now) {
            let index = Int(UInt32(truncatingIfNeeded: payload))
            let code = UInt8(truncatingIfNeeded: payload >> 56)
            guard index < records.count, records[index].machine != nil,
                records[index].generation & 0xFF_FFFF == UInt32(truncatingIfNeeded: payload >> 32) & 0xFF_FFFF
            else { continue }
            let slot = TimerSlot(code: code)
            records[index].timers[slot.rawValue] = nil
            switch code {
            case TimerSlot.failoverCode:
                failoverTimeout(index, now: now, sink: sink)
            case TimerSlot.reapCode:
                end(index)
            case TransactionTimer.c.rawValue:
                timerC(index, now: now, sink: sink)
            default:
                guard let timer = TransactionTimer(rawValue: code),
                    let output = records[index].machine?.handle(.timerFired(timer)) else { continue }
                switch output.transmit {
                case .request, .lastResponse: resend(index, sink: sink)
                case .ack, nil: break
                }
                if output.outcome == .timedOut, records[index].machine?.kind.isServer == false,
                    let server = currentServer(of: index) {
                    // Timer B/F: the core never answered this branch.
                    counters.timeouts += 1
                    failOver(server: server, from: index, reason: .timeout, now: now, sink: sink)
                } else {
                    if output.outcome == .timedOut { counters.timeouts += 1 }
                    apply(output, to: index, now: now)
                }
            }
        }
    }

    /// No answer from the branch's upstream in time: try the next one; with none left, answer 408 (500 after a 503)
    /// when the request already failed over, else (a single upstream to try: it may just be slow) let the branch
    /// run to its own Timer B/F. A cancelled INVITE ends with 487.
    private func failoverTimeout<Sink: FlowSink>(_ client: Int, now: UInt64, sink: Sink) {
        guard let server = currentServer(of: client) else { return }
        if records[server].flags.contains(.cancelRequested) {
            copyStored(client)
            giveUp(server, status: 487, reason: "Request Terminated", now: now, sink: sink)
            abandon(client, now: now)
            return
        }
        sink.upstreamFailed(records[client].flow.address)
        if nextUpstream(for: server) != nil {
            failOver(server: server, from: client, reason: .timeout, now: now, sink: sink,
                     reported: true)
        } else if records[server].attempts > 1 {
            // Every upstream this request may try has now failed it: answer at once, rather than at the last
            // branch's Timer B (32 s, when a UDP client gives up on its own anyway).
            counters.timeouts += 1
            copyStored(client)
            abandon(client, now: now)
            giveUpUnanswered(server, now: now, sink: sink)
        }
    }

    /// Timer C (RFC 3261 §16.8): an INVITE without a final response for this long is cancelled toward the core
    /// and answered 408.
    private func timerC<Sink: FlowSink>(_ server: Int, now: UInt64, sink: Sink) {
        guard records[server].machine?.state == .proceeding, let client = currentClient(of: server) else { return }
        counters.timeouts += 1
        if records[client].machine?.state == .proceeding, !records[server].flags.contains(.cancelSent) {
            sendCancel(server: server, branch: client, now: now, sink: sink)
        }
        copyStored(client)
        giveUp(server, status: 408, reason: "Request Timeout", now: now, sink: sink)
        abandon(client, now: now)
    }

    // MARK: Failover

    /// The up upstream to try next for `server`, when it has tries left.
    private func nextUpstream(for server: Int) -> EndpointAddress? {
        guard Int(records[server].attempts) < settings.maxAttempts else { return nil }
        return proxy.pickUpstream(routingHash: records[server].routingHash, excluding: records[server].excluded)
    }

    /// Gives up the branch `failed` and sends the request to the next upstream with a new branch (RFC 3261 §16.7
    /// serial forking); with none left, answers the client (§16.7 step 6: 500 for a 503, else 408).
    private func failOver<Sink: FlowSink>(server: Int, from failed: Int, reason: FailoverReason, now: UInt64,
                                          sink: Sink, reported: Bool = false) {
        var reason = reason
        if !reported { sink.upstreamFailed(records[failed].flow.address) }
        copyStored(failed)
        let method = records[failed].method
        let offset = Int(records[failed].branchOffset)
        if reason == .transport || records[failed].machine?.isTerminated == true {
            end(failed)
        } else {
            abandon(failed, now: now)
        }
        while let upstream = nextUpstream(for: server) {
            if let member = proxy.upstreams.index(of: upstream) { records[server].excluded |= 1 << UInt64(member) }
            let branch = StatelessProxy.attemptBranch(base: records[server].branch, attempt: Int(records[server].attempts))
            records[server].attempts += 1
            ForwardedRequest.writeHex(branch, at: offset, in: &stored)
            counters.failovers[reason.ordinal] += 1
            let flow = Flow(transport: proxy.configuration.upstreamTransport, address: upstream)
            guard let client = startClient(server: server, request: stored, to: flow, method: method, now: now) else { break }
            if sink.deliver(stored, to: flow) {
                counters.forwarded += 1
                return
            }
            sink.upstreamFailed(upstream)
            end(client)
            reason = .transport
        }
        giveUpUnanswered(server, now: now, sink: sink)
    }

    /// No upstream answered (RFC 3261 §16.7 step 6): 500 when a 503 was the only answer (it is never relayed), else
    /// 408. The request is in ``stored``.
    private func giveUpUnanswered<Sink: FlowSink>(_ server: Int, now: UInt64, sink: Sink) {
        let got503 = records[server].flags.contains(.got503)
        giveUp(server, status: got503 ? 500 : 408, reason: got503 ? "Server Internal Error" : "Request Timeout",
               now: now, sink: sink)
    }

    /// Answers the client with a response of the edge's own, built from the request in ``stored``.
    private func giveUp<Sink: FlowSink>(_ server: Int, status: UInt16, reason: StaticString, now: UInt64, sink: Sink) {
        cancelTimer(.proxy, of: server)
        guard ForwardedRequest.buildResponse(status: status, reason: reason, tag: records[server].branch,
                                             of: stored, into: &built) else {
            end(server)
            return
        }
        let bytes = built
        respond(server, status: Int(status), bytes: bytes, to: records[server].flow, now: now, sink: sink, local: true)
    }

    // MARK: Client transactions

    /// Starts a client transaction for `server` that sends `request` (the caller sends it) to `upstream`, with its
    /// timers and its own copy of the request. Nil when it cannot be tracked.
    private func startClient(server: Int, request: [UInt8], to upstream: Flow, method: SIPMethod.Known,
                             now: UInt64, hopByHop: Bool = false) -> Int? {
        guard let offset = ForwardedRequest.branchDigitsOffset(in: request), let client = allocate() else { return nil }
        guard let copy = store.store(request) else {
            release(client)
            return nil
        }
        // The key is the branch with its cookie (the client-side key of RFC 3261 §17.1.3) and the method, whose
        // name starts the request line.
        let methodEnd = request.firstIndex(of: 0x20) ?? 0
        let cookieLength = 7
        let inserted = request.withPacketBytes { bytes in
            map.insert(TransactionKey.client(
                branch: ByteSpan(offset: offset - cookieLength, length: cookieLength + ForwardedRequest.branchDigits),
                in: bytes, method: SIPMethod(known: method, span: ByteSpan(offset: 0, length: methodEnd)),
                methodBytes: bytes), value: UInt32(client))
        }
        guard case .inserted(let handle) = inserted else {
            store.release(copy)
            release(client)
            return nil
        }
        let kind: TransactionMachine.Kind = method == .invite ? .inviteClient : .nonInviteClient
        let (machine, output) = TransactionMachine.start(kind, reliable: upstream.transport.isStream, timers: timers)
        records[client].machine = machine
        records[client].mapHandle = handle
        records[client].message = copy
        records[client].flow = upstream
        records[client].method = method
        records[client].branchOffset = Int32(offset)
        if hopByHop { records[client].flags.insert(.hopByHop) }
        records[client].peer = UInt32(server)
        records[client].peerGeneration = records[server].generation
        if !hopByHop {
            records[server].peer = UInt32(client)
            records[server].peerGeneration = records[client].generation
            startTimer(TimerSlot.failoverCode, after: settings.failoverTimeoutMilliseconds, record: client, now: now)
        }
        counters.active[Int(kind.rawValue)] += 1
        apply(output, to: client, now: now)
        return client
    }

    /// The ACK for a non-2xx final response on branch `client` (RFC 3261 §17.1.1.3): hop by hop, from the edge.
    private func sendAck<Sink: FlowSink>(_ client: Int, for response: SIPMessage, sink: Sink) {
        guard let index = response.firstIndex(of: .to) else { return }
        let line = response.header(at: index)
        toLine.removeAll(keepingCapacity: true)
        response.bytes.append(ByteSpan(from: line.name.start, to: line.value.end), to: &toLine)
        toLine.append(contentsOf: [0x0D, 0x0A])
        copyStored(client)
        guard ForwardedRequest.buildHopRequest(.ack, of: stored, responseTo: toLine, into: &built) else { return }
        _ = sink.deliver(built, to: records[client].flow)
    }

    /// Sends the CANCEL of `server`'s INVITE on `branch` as a client transaction of its own (retransmitted over
    /// UDP; its responses stay here).
    private func sendCancel<Sink: FlowSink>(server: Int, branch: Int, now: UInt64, sink: Sink) {
        records[server].flags.insert(.cancelSent)
        copyStored(branch)
        guard ForwardedRequest.buildHopRequest(.cancel, of: stored, responseTo: nil, into: &built) else { return }
        let request = built
        let upstream = records[branch].flow
        guard startClient(server: server, request: request, to: upstream, method: .cancel, now: now, hopByHop: true) != nil else { return }
        if sink.deliver(request, to: upstream) { counters.forwarded += 1 }
    }

    /// Stops a branch that was given up: no more retransmissions or failover, but it stays to absorb (or, for a
    /// 2xx, relay) a late answer until its own timers end it (at most 64 × T1 when it has none running).
    private func abandon(_ client: Int, now: UInt64) {
        guard records[client].machine != nil else { return }
        records[client].flags.insert(.abandoned)
        cancelTimer(.retransmit, of: client)
        cancelTimer(.proxy, of: client)
        if records[client].timers[TimerSlot.lifetime.rawValue] == nil {
            startTimer(TimerSlot.reapCode, after: 64 * timers.t1, record: client, now: now)
        }
    }

    // MARK: Server responses

    /// Starts the client transaction for the request in ``StatelessProxy/output``: its branch value and the client
    /// record, or nil when it cannot be tracked. (A function of its own, so the copy is let go before the next.)
    private func track(server: Int, to upstream: Flow, method: SIPMethod.Known, now: UInt64) -> (UInt64, Int)? {
        let request = outputArray()
        guard let offset = ForwardedRequest.branchDigitsOffset(in: request),
            let base = ForwardedRequest.branch(at: offset, in: request),
            let client = startClient(server: server, request: request, to: upstream, method: method, now: now)
        else { return nil }
        return (base, client)
    }

    /// ``StatelessProxy/output`` copied into ``outputCopy``, whose storage is reused as long as no caller keeps the
    /// array past the next copy.
    private func outputArray() -> [UInt8] {
        outputCopy.removeAll(keepingCapacity: true)
        proxy.output.withPacketBytes { $0.append($0.all, to: &outputCopy) }
        return outputCopy
    }

    /// Hands a response (the core's, relayed, or the edge's own) to the server transaction, which sends it to
    /// the client unless it has already sent a final one, and keeps it to answer retransmissions.
    private func respond<Sink: FlowSink>(_ server: Int, status: Int, bytes: [UInt8], to destination: Flow,
                                         now: UInt64, sink: Sink,
                                         local: Bool = false) {
        guard let output = records[server].machine?.handle(.response(status: status)) else { return }
        if output.passOn, sink.deliver(bytes, to: destination) {
            if local { counters.replied += 1 } else { counters.forwarded += 1 }
        }
        if output.passOn, let state = records[server].machine?.state, state == .proceeding || state == .completed {
            if let old = records[server].message { store.release(old) }
            records[server].message = store.store(bytes)
        }
        apply(output, to: server, now: now)
    }

    // MARK: Records and timers

    /// Sends a record's stored message again: the request toward the core (client), the last response (server).
    private func resend<Sink: FlowSink>(_ index: Int, sink: Sink) {
        guard records[index].message != nil else { return }
        copyStored(index)
        _ = sink.deliver(stored, to: records[index].flow)
    }

    private func copyStored(_ index: Int) {
        stored.removeAll(keepingCapacity: true)
        if let handle = records[index].message { store.append(handle, to: &stored) }
    }

    /// Stops and starts the timers an event's output names; ends the record when the transaction ended.
    private func apply(_ output: TransactionMachine.Output, to index: Int, now: UInt64) {
        if !output.stop.isDisjoint(with: TimerSlot.retransmitTimers) { cancelTimer(.retransmit, of: index) }
        if !output.stop.isDisjoint(with: TimerSlot.lifetimeTimers) { cancelTimer(.lifetime, of: index) }
        if let start = output.start { startTimer(start.timer, after: start.afterMilliseconds, record: index, now: now) }
        if let start = output.alsoStart {
            startTimer(start.timer, after: start.afterMilliseconds, record: index, now: now)
        }
        if output.outcome != nil { end(index) }
    }

    private func startTimer(_ timer: TransactionTimer, after delay: UInt64, record index: Int, now: UInt64) {
        startTimer(timer.rawValue, after: delay, record: index, now: now)
    }

    private func startTimer(_ code: UInt8, after delay: UInt64, record index: Int, now: UInt64) {
        let slot = TimerSlot(code: code)
        cancelTimer(slot, of: index)
        let payload = UInt64(index) | UInt64(records[index].generation & 0xFF_FFFF) << 32 | UInt64(code) << 56
        records[index].timers[slot.rawValue] = wheel.schedule(after: delay, payload: payload, now: now)
    }

    private func cancelTimer(_ slot: TimerSlot, of index: Int) {
        if let handle = records[index].timers[slot.rawValue] {
            wheel.cancel(handle)
            records[index].timers[slot.rawValue] = nil
        }
    }

    /// The branch `server` is trying now, if it is still live.
    private func currentClient(of server: Int) -> Int? {
        let client = Int(records[server].peer)
        guard client < records.count, records[client].machine != nil,
            records[client].generation == records[server].peerGeneration else { return nil }
        return client
    }

    /// The server transaction of branch `client`, when it is live and `client` is its current branch.
    private func currentServer(of client: Int) -> Int? {
        guard !records[client].flags.contains(.abandoned), !records[client].flags.contains(.hopByHop) else { return nil }
        let server = Int(records[client].peer)
        guard server < records.count, records[server].machine != nil,
            records[server].generation == records[client].peerGeneration,
            currentClient(of: server) == client else { return nil }
        return server
    }

    private func allocate() -> Int? {
        guard freeHead >= 0 else { return nil }
        let index = Int(freeHead)
        freeHead = records[index].nextFree
        return index
    }

    /// Returns a record that never started a transaction to the free list.
    private func release(_ index: Int) {
        records[index].reset(nextFree: freeHead)
        freeHead = Int32(index)
    }

    /// Ends a transaction: out of the map, timers cancelled, message released, record free.
    private func end(_ index: Int) {
        guard let machine = records[index].machine else { return }
        counters.active[Int(machine.kind.rawValue)] -= 1
        if let handle = records[index].mapHandle { map.remove(handle) }
        cancelTimer(.retransmit, of: index)
        cancelTimer(.lifetime, of: index)
        cancelTimer(.proxy, of: index)
        if let message = records[index].message { store.release(message) }
        release(index)
    }
}

/// One transaction's state beside its machine. Server records hold the client's flow, the last response, the
/// routing hash and the tries so far; client records hold the upstream, the request as sent and its branch.
struct TransactionRecord {
    struct Flags: OptionSet {
        let rawValue: UInt8
        /// Server: the client sent a CANCEL.
        static let cancelRequested = Flags(rawValue: 1)
        /// Server: the CANCEL went to the core.
        static let cancelSent = Flags(rawValue: 2)
        /// Server: an upstream answered 503.
        static let got503 = Flags(rawValue: 4)
        /// Client: a branch given up (failover, Timer C); it only absorbs late answers.
        static let abandoned = Flags(rawValue: 8)
        /// Client: a CANCEL the edge sends; its responses stay here.
        static let hopByHop = Flags(rawValue: 16)
    }

    /// Nil while the record is free.
    var machine: TransactionMachine?
    /// Moves on each time the record is freed, so timers and links to an earlier transaction go stale.
    var generation: UInt32 = 0
    var mapHandle: TransactionMap.Handle?
    /// Server: the last response sent to the client. Client: the request as sent to the upstream.
    var message: MessageStore.Handle?
    /// Server: the client. Client: the upstream.
    var flow = Flow.udp(EndpointAddress(family: .ipv4, high: 0, low: 0, port: 0))
    /// Server: its current branch. Client: its server.
    var peer: UInt32 = .max
    var peerGeneration: UInt32 = 0
    /// Server: the branch of the first try (later tries derive theirs from it); also the tag of its own responses.
    var branch: UInt64 = 0
    var routingHash: UInt64 = 0
    /// Server: upstream set members tried (bit i: member i).
    var excluded: UInt64 = 0
    /// Client: where the branch's hex digits start in ``message``.
    var branchOffset: Int32 = 0
    var method: SIPMethod.Known = .invite
    var attempts: UInt8 = 0
    var flags: Flags = []
    var timers = TimerHandles()
    var nextFree: Int32

    init(nextFree: Int32) {
        self.nextFree = nextFree
    }

    mutating func reset(nextFree: Int32) {
        let generation = self.generation &+ 1
        self = TransactionRecord(nextFree: nextFree)
        self.generation = generation
    }
}

/// A record's running timers, one per ``TimerSlot`` (inline: a record allocates nothing).
struct TimerHandles {
    private var retransmit: TimerHandle?
    private var lifetime: TimerHandle?
    private var proxy: TimerHandle?

    subscript(slot: Int) -> TimerHandle? {
        get { slot == 0 ? retransmit : slot == 1 ? lifetime : proxy }
        set {
            switch slot {
            case 0: retransmit = newValue
            case 1: lifetime = newValue
            default: proxy = newValue
            }
        }
    }
}

/// The three timers a record can have running at once, one per slot: retransmission (A, E, G), lifetime (B, D, F,
/// H, I, J, K, L, M and the reaper of abandoned branches), and the proxy's own (Timer C on a server, the failover
/// timeout on a client).
enum TimerSlot: Int, CaseIterable {
    case retransmit, lifetime, proxy

    static let count = 3
    static let failoverCode: UInt8 = 13
    static let reapCode: UInt8 = 14
    static let retransmitTimers: TimerSet = [.a, .e, .g]
    static let lifetimeTimers: TimerSet = [.b, .d, .f, .h, .i, .j, .k, .l, .m]

    init(code: UInt8) {
        switch code {
        case TransactionTimer.a.rawValue, TransactionTimer.e.rawValue, TransactionTimer.g.rawValue:
            self = .retransmit
        case TransactionTimer.c.rawValue, Self.failoverCode:
            self = .proxy
        default:
            self = .lifetime
        }
    }
}
