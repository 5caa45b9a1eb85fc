/// The four transaction state machines of RFC 3261 §17 (with RFC 6026's Accepted state and Timers L and M), as
/// one pure value per transaction: events in, what to do out. The worker keeps one per slot of its transaction map,
/// runs the timers it asks for on its timer wheel, and sends what it says; nothing here does I/O or reads a clock.
///
/// One value type rather than four classes: a worker holds tens of thousands in one preallocated array, and an
/// event is handled without allocating.
public struct TransactionMachine: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        /// We received an INVITE from a client (RFC 3261 §17.2.1).
        case inviteServer
        /// We received another request from a client (§17.2.2).
        case nonInviteServer
        /// We sent an INVITE toward the core (§17.1.1).
        case inviteClient
        /// We sent another request toward the core (§17.1.2).
        case nonInviteClient

        public var isServer: Bool { self == .inviteServer || self == .nonInviteServer }
        public var isInvite: Bool { self == .inviteServer || self == .inviteClient }
    }

    public enum State: UInt8, Sendable {
        case calling, trying, proceeding, completed, confirmed, accepted, terminated
    }

    public enum Event: Sendable, Equatable {
        /// The request arrived again (server side: the client retransmitted).
        case requestRetransmitted
        /// Server side: an ACK for this INVITE transaction's non-2xx final response.
        case ack
        /// Client side: a response arrived from the core. Server side: the core's response is being sent to the
        /// client through this transaction (the transaction user's response, in RFC terms).
        case response(status: Int)
        case timerFired(TransactionTimer)
        /// Client side: the request could not be sent (ICMP refused, connection lost).
        case transportError
    }

    /// What to send, when an event calls for it.
    public enum Transmission: Sendable, Equatable {
        /// Client side: the request again (Timers A and E).
        case request
        /// Server side: the last response sent, again (a retransmitted request, Timer G).
        case lastResponse
        /// Client side: an ACK for the non-2xx final response just received (§17.1.1.3).
        case ack
    }

    /// How the transaction ended, when it did.
    public enum Outcome: Sendable, Equatable {
        /// It ran its course (a final response and its absorption period).
        case finished
        /// Timer B, F (no final response from the core) or H (no ACK from the client).
        case timedOut
        case transportFailed
    }

    public struct TimerStart: Sendable, Equatable {
        public var timer: TransactionTimer
        public var afterMilliseconds: UInt64

        public init(timer: TransactionTimer, afterMilliseconds: UInt64) {
            self.timer = timer
            self.afterMilliseconds = afterMilliseconds
        }
    }

    /// The response of one event. At most two timers start at once (A and B, G and H).
    public struct Output: Sendable, Equatable {
        public var transmit: Transmission?
        /// Client side: pass the response on toward the client. Server side: send it to the client.
        public var passOn = false
        public var start: TimerStart?
        public var alsoStart: TimerStart?
        /// Timers to cancel.
        public var stop = TimerSet()
        /// Set when the transaction has ended: its slot can be freed.
        public var outcome: Outcome?

        public init() {}
    }

    public let kind: Kind
    public private(set) var state: State
    /// The current retransmission interval (A, E, G double it).
    public private(set) var interval: UInt64
    /// Over TCP/TLS nothing is retransmitted and the absorption timers are 0 (RFC 3261 §17).
    public let reliable: Bool
    private let timers: TransactionTimers

    /// A new transaction and what to do at once: a client transaction sends its request and starts its timers; a
    /// server transaction starts in Proceeding (INVITE: the edge sends 100 Trying itself) or Trying.
    public static func start(_ kind: Kind, reliable: Bool, timers: TransactionTimers) -> (TransactionMachine, Output) {
        var machine = TransactionMachine(kind: kind, reliable: reliable, timers: timers)
        var output = Output()
        switch kind {
        case .inviteClient:
            machine.state = .calling
            output.transmit = .request
            if !reliable { output.start = TimerStart(timer: .a, afterMilliseconds: timers.t1) }
            output.alsoStart = TimerStart(timer: .b, afterMilliseconds: 64 * timers.t1)
        case .nonInviteClient:
            machine.state = .trying
            output.transmit = .request
            if !reliable { output.start = TimerStart(timer: .e, afterMilliseconds: timers.t1) }
            output.alsoStart = TimerStart(timer: .f, afterMilliseconds: 64 * timers.t1)
        case .inviteServer:
            machine.state = .proceeding
        case .nonInviteServer:
            machine.state = .trying
        }
        return (machine, output)
    }

    private init(kind: Kind, reliable: Bool, timers: TransactionTimers) {
        self.kind = kind
        self.reliable = reliable
        self.timers = timers
        state = .trying
        interval = timers.t1
    }

    public var isTerminated: Bool { state == .terminated }

    /// Handles one event; events that do not apply in the current state change nothing (and say so by an empty
    /// output), as the RFC's diagrams leave them out.
    public mutating func handle(_ event: Event) -> Output {
        guard state != .terminated else { return Output() }
        switch kind {
        case .inviteClient: return inviteClient(event)
        case .nonInviteClient: return nonInviteClient(event)
        case .inviteServer: return inviteServer(event)
        case .nonInviteServer: return nonInviteServer(event)
        }
    }

    // MARK: Client INVITE (§17.1.1, RFC 6026 §7.2)

    private mutating func inviteClient(_ event: Event) -> Output {
        var output = Output()
        switch (state, event) {
        case (.calling, .timerFired(.a)):
            interval *= 2
            output.transmit = .request
            output.start = TimerStart(timer: .a, afterMilliseconds: interval)
        case (.calling, .timerFired(.b)), (.calling, .transportError):
            return end(event == .transportError ? .transportFailed : .timedOut, stopping: [.a, .b])
        case (.calling, .response(let status)) where status < 200:
            state = .proceeding
            output.passOn = true
            output.stop = [.a, .b]
        case (.proceeding, .response(let status)) where status < 200:
            output.passOn = true
        case (.calling, .response(let status)) where status < 300, (.proceeding, .response(let status)) where status < 300:
            // 2xx: the ACK is end to end; stay to pass on retransmitted 2xx (RFC 6026).
            state = .accepted
            output.passOn = true
            output.stop = [.a, .b]
            output.start = TimerStart(timer: .m, afterMilliseconds: 64 * timers.t1)
        case (.calling, .response), (.proceeding, .response):
            state = .completed
            output.transmit = .ack
            output.passOn = true
            output.stop = [.a, .b]
            output.start = TimerStart(timer: .d, afterMilliseconds: reliable ? 0 : max(32_000, 64 * timers.t1))
        case (.completed, .response(let status)) where status >= 300:
            // A retransmitted final response: ACK it again, do not pass it on.
            output.transmit = .ack
        case (.accepted, .response(let status)) where (200..<300).contains(status):
            output.passOn = true
        case (.completed, .timerFired(.d)), (.accepted, .timerFired(.m)):
            return end(.finished)
        default:
            break
        }
        return output
    }

    // MARK: Client non-INVITE (§17.1.2)

    private mutating func nonInviteClient(_ event: Event) -> Output {
        var output = Output()
        switch (state, event) {
        case (.trying, .timerFired(.e)), (.proceeding, .timerFired(.e)):
            // Trying doubles up to T2; Proceeding retransmits every T2.
            interval = state == .trying ? min(interval * 2, timers.t2) : timers.t2
            output.transmit = .request
            output.start = TimerStart(timer: .e, afterMilliseconds: interval)
        case (.trying, .timerFired(.f)), (.proceeding, .timerFired(.f)):
            return end(.timedOut, stopping: [.e, .f])
        case (.trying, .transportError), (.proceeding, .transportError):
            return end(.transportFailed, stopping: [.e, .f])
        case (.trying, .response(let status)) where status < 200, (.proceeding, .response(let status)) where status < 200:
            state = .proceeding
            output.passOn = true
        case (.trying, .response), (.proceeding, .response):
            state = .completed
            output.passOn = true
            output.stop = [.e, .f]
            output.start = TimerStart(timer: .k, afterMilliseconds: reliable ? 0 : timers.t4)
        case (.completed, .timerFired(.k)):
            return end(.finished)
        default:
            break  // Completed absorbs retransmitted responses.
        }
        return output
    }

    // MARK: Server INVITE (§17.2.1, RFC 6026 §7.1)

    private mutating func inviteServer(_ event: Event) -> Output {
        var output = Output()
        switch (state, event) {
        case (.proceeding, .requestRetransmitted), (.completed, .requestRetransmitted):
            output.transmit = .lastResponse
        case (.proceeding, .response(let status)) where status < 200:
            output.passOn = true
        case (.proceeding, .response(let status)) where status < 300:
            state = .accepted
            output.passOn = true
            output.start = TimerStart(timer: .l, afterMilliseconds: 64 * timers.t1)
        case (.proceeding, .response):
            state = .completed
            output.passOn = true
            if !reliable { output.start = TimerStart(timer: .g, afterMilliseconds: timers.t1) }
            output.alsoStart = TimerStart(timer: .h, afterMilliseconds: 64 * timers.t1)
        case (.accepted, .response(let status)) where (200..<300).contains(status):
            // The core's retransmitted 2xx goes to the client (the ACK is end to end).
            output.passOn = true
        case (.completed, .timerFired(.g)):
            interval = min(interval * 2, timers.t2)
            output.transmit = .lastResponse
            output.start = TimerStart(timer: .g, afterMilliseconds: interval)
        case (.completed, .timerFired(.h)):
            return end(.timedOut, stopping: [.g, .h])
        case (.completed, .ack):
            state = .confirmed
            output.stop = [.g, .h]
            output.start = TimerStart(timer: .i, afterMilliseconds: reliable ? 0 : timers.t4)
        case (.confirmed, .timerFired(.i)), (.accepted, .timerFired(.l)):
            return end(.finished)
        default:
            break  // Confirmed absorbs ACKs; Accepted absorbs retransmitted INVITEs.
        }
        return output
    }

    // MARK: Server non-INVITE (§17.2.2)

    private mutating func nonInviteServer(_ event: Event) -> Output {
        var output = Output()
        switch (state, event) {
        case (.proceeding, .requestRetransmitted), (.completed, .requestRetransmitted):
            output.transmit = .lastResponse
        case (.trying, .response(let status)) where status < 200, (.proceeding, .response(let status)) where status < 200:
            state = .proceeding
            output.passOn = true
        case (.trying, .response), (.proceeding, .response):
            state = .completed
            output.passOn = true
            output.start = TimerStart(timer: .j, afterMilliseconds: reliable ? 0 : 64 * timers.t1)
        case (.completed, .timerFired(.j)):
            return end(.finished)
        default:
            break  // Trying absorbs retransmissions: there is nothing to resend yet.
        }
        return output
    }

    private mutating func end(_ outcome: Outcome, stopping timers: TimerSet = []) -> Output {
        state = .terminated
        var output = Output()
        output.outcome = outcome
        output.stop = timers
        return output
    }
}

/// The transaction timers of RFC 3261 §17 (A-K) and RFC 6026 (L, M). Timer C (§16.6 step 11, the proxy's 3 minutes
/// for an INVITE without a final response) belongs to the proxy layer above the transactions.
public enum TransactionTimer: UInt8, Sendable, CaseIterable {
    case a, b, c, d, e, f, g, h, i, j, k, l, m
}

/// A set of ``TransactionTimer``s as one bit each.
public struct TimerSet: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ timer: TransactionTimer) { rawValue = 1 << UInt16(timer.rawValue) }

    public static let a = TimerSet(.a), b = TimerSet(.b), c = TimerSet(.c), d = TimerSet(.d), e = TimerSet(.e)
    public static let f = TimerSet(.f), g = TimerSet(.g), h = TimerSet(.h), i = TimerSet(.i), j = TimerSet(.j)
    public static let k = TimerSet(.k), l = TimerSet(.l), m = TimerSet(.m)

    public func contains(_ timer: TransactionTimer) -> Bool { contains(TimerSet(timer)) }
}
