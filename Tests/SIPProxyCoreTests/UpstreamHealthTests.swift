import SIPProxyCore
import Testing

/// `#expect(health.probeFailed() == true)`: `#expect` cannot take a bare mutating call, a comparison it can.
@Suite("UpstreamHealth: fall and rise over probe outcomes")
struct UpstreamHealthTests {
    @Test("starts up, with fall 3 and rise 2 by default")
    func defaults() {
        let health = UpstreamHealth()
        #expect(health.isUp)
        #expect(health.fall == 3)
        #expect(health.rise == 2)
        #expect(!UpstreamHealth(startsUp: false).isUp)
    }

    @Test("down after `fall` failed probes in a row, and only the last one reports the change")
    func fallsAfterFallFailures() {
        var health = UpstreamHealth()
        #expect(health.probeFailed() == false)
        #expect(health.probeFailed() == false)
        #expect(health.isUp)
        #expect(health.probeFailed() == true)
        #expect(!health.isUp)
        #expect(health.probeFailed() == false, "already down: no change to report")
    }

    @Test("up after `rise` answered probes in a row")
    func risesAfterRiseAnswers() {
        var health = UpstreamHealth(startsUp: false)
        #expect(health.probeAnswered(status: 200) == false)
        #expect(!health.isUp)
        #expect(health.probeAnswered(status: 200) == true)
        #expect(health.isUp)
        #expect(health.probeAnswered(status: 200) == false, "already up: no change to report")
    }

    @Test("an answer in between resets the run of failures")
    func answerResetsFailures() {
        var health = UpstreamHealth()
        health.probeFailed()
        health.probeFailed()
        health.probeAnswered(status: 200)
        #expect(health.probeFailed() == false)
        #expect(health.probeFailed() == false)
        #expect(health.isUp)
        #expect(health.probeFailed() == true)
        #expect(!health.isUp)
    }

    @Test("a failure in between resets the run of answers")
    func failureResetsAnswers() {
        var health = UpstreamHealth(startsUp: false)
        health.probeAnswered(status: 200)
        health.probeFailed()
        #expect(health.probeAnswered(status: 200) == false)
        #expect(!health.isUp)
        #expect(health.probeAnswered(status: 200) == true)
        #expect(health.isUp)
    }

    @Test("any final response shows a live stack", arguments: [200, 202, 404, 405, 408, 480, 486, 500, 501, 600, 603])
    func finalResponsesAreAlive(status: Int) {
        var health = UpstreamHealth(startsUp: false)
        health.probeAnswered(status: status)
        #expect(health.probeAnswered(status: status) == true)
        #expect(health.isUp)

        health.probeFailed()
        health.probeFailed()
        health.probeAnswered(status: status)
        health.probeFailed()
        health.probeFailed()
        #expect(health.isUp, "a \(status) answer must break the run of failures")
    }

    @Test("503 counts as a failure (overload, RFC 3261 §21.5.4)")
    func serviceUnavailableIsFailure() {
        var health = UpstreamHealth()
        #expect(health.probeAnswered(status: 503) == false)
        #expect(health.probeAnswered(status: 503) == false)
        #expect(health.probeAnswered(status: 503) == true)
        #expect(!health.isUp)

        var recovering = UpstreamHealth(startsUp: false)
        recovering.probeAnswered(status: 200)
        recovering.probeAnswered(status: 503)
        #expect(recovering.probeAnswered(status: 200) == false, "a 503 breaks the run of answers")
        #expect(!recovering.isUp)
    }

    @Test("provisional responses are no outcome")
    func provisionalChangesNothing() {
        var health = UpstreamHealth()
        health.probeFailed()
        health.probeFailed()
        #expect(health.probeAnswered(status: 100) == false)
        #expect(health.probeAnswered(status: 183) == false)
        #expect(health.run == 2)
        #expect(health.probeFailed() == true, "the run of failures went on through the 1xx")
    }

    @Test("a passive failure counts as a failed probe, at once")
    func passiveFailureCountsAsProbeFailure() {
        var health = UpstreamHealth()
        health.probeFailed()
        #expect(health.passiveFailure() == false)
        #expect(health.run == 2)
        #expect(health.passiveFailure() == true)
        #expect(!health.isUp)

        var recovering = UpstreamHealth(startsUp: false)
        recovering.probeAnswered(status: 200)
        recovering.passiveFailure()
        #expect(recovering.probeAnswered(status: 200) == false, "a passive failure breaks the run of answers")
        #expect(recovering.probeAnswered(status: 200) == true)
    }

    @Test("fall 1 and rise 1 switch on every outcome")
    func fallAndRiseOfOne() {
        var health = UpstreamHealth(fall: 1, rise: 1)
        #expect(health.probeFailed() == true)
        #expect(health.probeAnswered(status: 200) == true)
        #expect(health.passiveFailure() == true)
        #expect(health.probeAnswered(status: 404) == true)
    }

    @Test("custom fall and rise")
    func customThresholds() {
        var health = UpstreamHealth(fall: 5, rise: 4)
        for _ in 0..<4 { #expect(health.probeFailed() == false) }
        #expect(health.probeFailed() == true)
        for _ in 0..<3 { #expect(health.probeAnswered(status: 200) == false) }
        #expect(health.probeAnswered(status: 200) == true)
        #expect(health.isUp)
    }
}
