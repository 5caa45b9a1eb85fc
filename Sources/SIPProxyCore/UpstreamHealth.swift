/// The health of one upstream, from its OPTIONS probes and from failures seen on live traffic.
///
/// Hysteresis in both directions: an upstream goes *down* after `fall` failures in a row and comes back *up*
/// after `rise` answers in a row, so one lost probe does not move its calls and one lucky answer does not bring
/// traffic back to a flapping server. The opposite outcome breaks a run.
///
/// It starts *up*, optimistically, as Kamailio's dispatcher does (probing mode 0): at start-up and after a reload
/// traffic flows at once instead of being refused for `rise` probe intervals, and a dead upstream is found within
/// `fall` probes, sooner through passive failures. Readiness (`/health/ready`) still waits for a real answer.
///
/// A pure value: the caller sends the probes, measures their timeouts and feeds the outcomes in.
public struct UpstreamHealth: Sendable, Equatable {
    /// Failures in a row that take an up upstream down.
    public let fall: Int
    /// Answers in a row that bring a down upstream back up.
    public let rise: Int
    public private(set) var isUp: Bool
    /// The current run of the outcome that would change the state: failures while up, answers while down.
    public private(set) var run: Int = 0

    public init(fall: Int = 3, rise: Int = 2, startsUp: Bool = true) {
        precondition(fall >= 1 && rise >= 1, "fall and rise must be at least 1")
        self.fall = fall
        self.rise = rise
        isUp = startsUp
    }

    /// A final response to a probe. Any final status shows a live SIP stack (404 or 405 to OPTIONS included), except
    /// 503: the upstream says it is overloaded or unavailable (RFC 3261 §21.5.4), so it counts as a failure.
    /// Provisional responses (1xx) are not an outcome yet and change nothing. Returns whether the state changed.
    @discardableResult
    public mutating func probeAnswered(status: Int) -> Bool {
        if status < 200 { return false }
        if status == 503 { return step(alive: false) }
        return step(alive: true)
    }

    /// A probe went unanswered within its timeout. Returns whether the state changed.
    @discardableResult
    public mutating func probeFailed() -> Bool {
        step(alive: false)
    }

    /// Live traffic showed the upstream unreachable (ICMP port unreachable, a pooled connection failed): counts as a
    /// failed probe at once, without waiting for the next probe. Returns whether the state changed.
    @discardableResult
    public mutating func passiveFailure() -> Bool {
        step(alive: false)
    }

    /// One outcome: a run of `fall` failures takes an up upstream down, a run of `rise` answers brings a down one
    /// back; an outcome that agrees with the current state breaks the run toward the other.
    private mutating func step(alive: Bool) -> Bool {
        guard isUp != alive else {
            run = 0
            return false
        }
        run += 1
        guard run >= (alive ? rise : fall) else { return false }
        isUp = alive
        run = 0
        return true
    }
}
