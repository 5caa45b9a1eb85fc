import SIPBytes
import SIPParsing
import SIPProxyCore
import SIPSecurity
import SIPSettings
import SIPUring
@testable import SIPTransport
import Foundation
import Testing

private let edge = EndpointAddress.parse("127.0.0.1", port: 5060)!
private let coreA = EndpointAddress.parse("127.0.0.1", port: 5070)!
private let coreB = EndpointAddress.parse("127.0.0.1", port: 5071)!
private let phone = EndpointAddress.parse("192.0.2.10", port: 40_000)!

/// A pipeline in transaction mode in front of two upstreams, driven without sockets; time moves by firing the
/// timers at a chosen `now`.
private struct Harness {
    let pipeline: MessagePipeline
    let sink = RecordingSink()
    let started = MonotonicClock.milliseconds()

    init(maxPerWorker: Int = 1_024, maxAttempts: Int = 3, upstreams: [EndpointAddress] = [coreA, coreB]) throws {
        let proxy = ProxyConfiguration(advertised: edge, upstreams: upstreams, flowKey: Array("transaction test key".utf8))
        var settings = TransactionSettings()
        settings.mode = .transaction
        settings.maxPerWorker = maxPerWorker
        settings.maxAttempts = maxAttempts
        settings.messageMemoryMegabytes = 1
        pipeline = MessagePipeline(parser: try SIPParser(), proxy: StatelessProxy(configuration: proxy),
                                   security: SecurityConfiguration(), rateLimit: RateLimitConfiguration(),
                                   audit: try AuditLog(destination: .off, linesPerSecond: 0, worker: 0),
                                   transactions: settings)
    }

    func fromPhone(_ text: String) {
        Array(text.utf8).withPacketBytes { pipeline.handle($0, from: .udp(phone), sink: sink) }
    }

    func fromCore(_ core: EndpointAddress, _ text: String) {
        Array(text.utf8).withPacketBytes { pipeline.handle($0, from: .udp(core), sink: sink) }
    }

    /// Fires the timers due `milliseconds` after the harness started.
    func advance(to milliseconds: UInt64) {
        pipeline.fireTransactionTimers(now: started + milliseconds, sink: sink)
    }

    var counters: WorkerCounters { pipeline.publishedCounters }

    /// What was sent since `mark` (an index into `sink.sent`).
    func sent(since mark: Int) -> [(text: String, flow: Flow)] { Array(sink.sent[mark...]) }
}

private func request(_ method: String = "INVITE", callID: String = "call-1", branch: String = "z9hG4bKphone1",
                     cseq: Int = 1, toTag: String? = nil) -> String {
    "\(method) sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:40000;branch=\(branch)\r\n"
        + "Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        + "To: <sip:bob@example.com>\(toTag.map { ";tag=\($0)" } ?? "")\r\nCall-ID: \(callID)\r\n"
        + "CSeq: \(cseq) \(method)\r\nContact: <sip:alice@192.0.2.10:40000>\r\nContent-Length: 0\r\n\r\n"
}

/// The core's response to a request it received (`forwarded`, the edge's output): its Via lines, From, To with
/// `toTag`, Call-ID and CSeq.
private func response(to forwarded: String, _ status: Int, _ reason: String, toTag: String = "core1") -> String {
    var out = "SIP/2.0 \(status) \(reason)\r\n"
    for line in forwarded.split(separator: "\r\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("Via:") || line.hasPrefix("From:") || line.hasPrefix("Call-ID:") || line.hasPrefix("CSeq:") {
            out += line + "\r\n"
        } else if line.hasPrefix("To:") {
            out += line + ";tag=\(toTag)\r\n"
        }
    }
    return out + "Content-Length: 0\r\n\r\n"
}

/// The branch of the edge's own Via (the first header line) in a request it sent.
private func edgeBranch(_ text: String) -> Substring? {
    guard let via = text.split(separator: "\r\n").dropFirst().first, let range = via.range(of: ";branch=") else {
        return nil
    }
    return via[range.upperBound...].prefix { $0 != ";" && $0 != "\r" }
}

@Suite struct TransactionLayerTests {
    @Test func anInviteIsAnswered100TryingAtOnceAndItsRetransmissionsNeverReachTheCore() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        #expect(edge.sink.sent.count == 2)
        let invites = edge.sink.sent.filter { $0.text.hasPrefix("INVITE") }
        #expect(invites.count == 1)
        #expect(invites.first.map { [coreA, coreB].contains($0.flow.address) } == true)
        let trying = edge.sink.sent.filter { $0.text.hasPrefix("SIP/2.0 100 Trying") }
        #expect(trying.first?.flow == .udp(phone))
        #expect(trying.first?.text.contains("To: <sip:bob@example.com>\r\n") == true, "a 100 Trying adds no tag")

        edge.fromPhone(request())
        edge.fromPhone(request())
        let after = edge.sent(since: 2)
        #expect(after.count == 2)
        #expect(after.allSatisfy { $0.text.hasPrefix("SIP/2.0 100 Trying") && $0.flow == .udp(phone) })
        #expect(edge.counters.transactions.retransmissionsAbsorbed == 2)
        #expect(edge.counters.transactions.active == [1, 0, 1, 0])
    }

    @Test func anUnansweredInviteIsRetransmittedByTheEdgeThenFailsOverToTheNextUpstreamWithANewBranch() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        let first = try #require(edge.sink.sent.first { $0.text.hasPrefix("INVITE") })
        let mark = edge.sink.sent.count
        edge.advance(to: 600)  // Timer A (T1 = 500 ms)
        #expect(edge.sent(since: mark).map(\.text) == [first.text])
        #expect(edge.sent(since: mark).first?.flow == first.flow)

        let beforeFailover = edge.sink.sent.count
        edge.advance(to: 2_100)  // failover_timeout_ms = 2,000
        let retried = edge.sent(since: beforeFailover).filter { $0.text.hasPrefix("INVITE") }
        let other = first.flow.address == coreA ? coreB : coreA
        #expect(retried.last?.flow.address == other)
        #expect(retried.last.flatMap { edgeBranch($0.text) } != edgeBranch(first.text))
        #expect(edge.sink.failedUpstreams == [first.flow.address])
        #expect(edge.counters.transactions.failovers[FailoverReason.timeout.ordinal] == 1)

        // The given-up branch is quiet; the new one is retransmitted (Timer A restarts at T1 for it).
        let afterFailover = edge.sink.sent.count
        edge.advance(to: 2_700)
        #expect(edge.sent(since: afterFailover).allSatisfy { $0.flow.address == other })
        #expect(edge.sent(since: afterFailover).count == 1)
    }

    @Test func a503IsAcknowledgedByTheEdgeAndNotRelayedWhileTheNextUpstreamAnswersTheCall() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        let first = try #require(edge.sink.sent.first { $0.text.hasPrefix("INVITE") })
        let mark = edge.sink.sent.count
        edge.fromCore(first.flow.address, response(to: first.text, 503, "Service Unavailable", toTag: "busy1"))
        let out = edge.sent(since: mark)
        let ack = try #require(out.first { $0.text.hasPrefix("ACK") })
        #expect(ack.flow.address == first.flow.address)
        #expect(ack.text.contains("To: <sip:bob@example.com>;tag=busy1\r\n"))
        #expect(ack.text.contains("CSeq: 1 ACK\r\n"))
        #expect(edgeBranch(ack.text) == edgeBranch(first.text), "the ACK of a non-2xx is in the INVITE's transaction")
        let second = try #require(out.first { $0.text.hasPrefix("INVITE") })
        #expect(second.flow.address != first.flow.address)
        #expect(!out.contains { $0.flow == .udp(phone) }, "the phone hears nothing of the 503")
        #expect(edge.counters.transactions.failovers[FailoverReason.status503.ordinal] == 1)

        let ringing = edge.sink.sent.count
        edge.fromCore(second.flow.address, response(to: second.text, 180, "Ringing", toTag: "ok1"))
        edge.fromCore(second.flow.address, response(to: second.text, 200, "OK", toTag: "ok1"))
        let relayed = edge.sent(since: ringing)
        #expect(relayed.count == 2)
        #expect(relayed.first?.text.hasPrefix("SIP/2.0 180 Ringing") == true)
        #expect(relayed.last?.text.hasPrefix("SIP/2.0 200 OK") == true)
        #expect(relayed.allSatisfy { $0.flow == .udp(phone) })
    }

    @Test func whenEveryUpstreamAnswers503TheClientGets500AfterMaxAttempts() throws {
        let edge = try Harness(maxAttempts: 2)
        edge.fromPhone(request())
        for _ in 0..<2 {
            let invite = try #require(edge.sink.sent.last { $0.text.hasPrefix("INVITE") })
            edge.fromCore(invite.flow.address, response(to: invite.text, 503, "Service Unavailable"))
        }
        #expect(edge.sink.sent.filter { $0.text.hasPrefix("INVITE") }.count == 2)
        let final = try #require(edge.sink.sent.last { $0.flow == .udp(phone) })
        #expect(final.text.hasPrefix("SIP/2.0 500 Server Internal Error\r\n"))
        #expect(final.text.contains("Via: SIP/2.0/UDP 192.0.2.10:40000;branch=z9hG4bKphone1"))
        #expect(!final.text.contains("127.0.0.1:5060"), "the edge's own Via is not in the client's response")
        #expect(final.text.contains("To: <sip:bob@example.com>;tag="))
        // The phone's ACK for the 500 stays at the edge; its retransmitted INVITE gets the 500 again.
        let mark = edge.sink.sent.count
        edge.fromPhone(request("ACK"))
        #expect(edge.sent(since: mark).isEmpty)
    }

    @Test func whenNoUpstreamAnswersTheClientGets408AfterTheLastFailoverTimeoutNotAtTimerB() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        edge.advance(to: 2_100)
        #expect(Set(edge.sink.sent.filter { $0.text.hasPrefix("INVITE") }.map(\.flow.address)) == [coreA, coreB])
        #expect(!edge.sink.sent.contains { $0.text.hasPrefix("SIP/2.0 408") })
        edge.advance(to: 4_200)  // the second (last up) upstream's failover timeout
        let final = try #require(edge.sink.sent.last { $0.flow == .udp(phone) })
        #expect(final.text.hasPrefix("SIP/2.0 408 Request Timeout\r\n"))
        #expect(Set(edge.sink.failedUpstreams) == [coreA, coreB])
        #expect(edge.counters.transactions.timeouts == 1)
    }

    @Test func aSingleUpstreamThatIsSlowIsNotCutShortByTheFailoverTimeout() throws {
        let edge = try Harness(upstreams: [coreA])
        edge.fromPhone(request())
        edge.advance(to: 10_000)
        #expect(!edge.sink.sent.contains { $0.text.hasPrefix("SIP/2.0 408") })
        let invite = try #require(edge.sink.sent.last { $0.text.hasPrefix("INVITE") })
        edge.fromCore(coreA, response(to: invite.text, 180, "Ringing"))
        #expect(edge.sink.sent.last?.text.hasPrefix("SIP/2.0 180 Ringing") == true)
    }

    @Test func aNon2xxFinalIsRelayedAndTheClientsAckAndRetransmissionsStayAtTheEdge() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        let invite = try #require(edge.sink.sent.first { $0.text.hasPrefix("INVITE") })
        edge.fromCore(invite.flow.address, response(to: invite.text, 486, "Busy Here"))
        let busy = try #require(edge.sink.sent.last { $0.flow == .udp(phone) })
        #expect(busy.text.hasPrefix("SIP/2.0 486 Busy Here"))
        #expect(edge.sink.sent.contains { $0.text.hasPrefix("ACK") && $0.flow.address == invite.flow.address })

        let mark = edge.sink.sent.count
        edge.fromPhone(request())  // the phone missed the 486
        #expect(edge.sent(since: mark).map(\.text) == [busy.text])
        edge.fromPhone(request("ACK"))
        #expect(edge.sent(since: mark).count == 1, "the phone's ACK is the edge's (hop by hop)")
        // Timer G resends the 486 until the ACK came; after it, nothing more.
        edge.advance(to: 10_000)
        #expect(edge.sent(since: mark).count == 1)
        edge.advance(to: 60_000)
        #expect(edge.counters.transactions.active == [0, 0, 0, 0])
    }

    @Test func aCancelIsAnswered200AndSentOnTheInvitesBranchWhoseResponsesStayAtTheEdge() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        let invite = try #require(edge.sink.sent.first { $0.text.hasPrefix("INVITE") })
        edge.fromCore(invite.flow.address, response(to: invite.text, 180, "Ringing"))
        let mark = edge.sink.sent.count
        edge.fromPhone(request("CANCEL"))
        let out = edge.sent(since: mark)
        #expect(out.contains { $0.text.hasPrefix("SIP/2.0 200 OK") && $0.text.contains("CSeq: 1 CANCEL") && $0.flow == .udp(phone) })
        let cancel = try #require(out.first { $0.text.hasPrefix("CANCEL") })
        #expect(cancel.flow.address == invite.flow.address)
        #expect(edgeBranch(cancel.text) == edgeBranch(invite.text))
        #expect(cancel.text.contains("CSeq: 1 CANCEL\r\n"))

        let answers = edge.sink.sent.count
        edge.fromCore(invite.flow.address, response(to: cancel.text, 200, "OK"))
        #expect(edge.sent(since: answers).isEmpty, "the CANCEL's 200 is hop by hop")
        edge.fromCore(invite.flow.address, response(to: invite.text, 487, "Request Terminated"))
        #expect(edge.sent(since: answers).contains { $0.text.hasPrefix("SIP/2.0 487") && $0.flow == .udp(phone) })
    }

    @Test func aCancelBeforeAnyProvisionalWaitsForOneAndStopsTheFailover() throws {
        let edge = try Harness()
        edge.fromPhone(request())
        let invite = try #require(edge.sink.sent.first { $0.text.hasPrefix("INVITE") })
        let mark = edge.sink.sent.count
        edge.fromPhone(request("CANCEL"))
        #expect(!edge.sent(since: mark).contains { $0.text.hasPrefix("CANCEL") }, "RFC 3261 §9.1: not before a provisional")
        edge.advance(to: 2_100)
        let out = edge.sent(since: mark)
        #expect(!out.contains { $0.text.hasPrefix("INVITE") && $0.flow.address != invite.flow.address })
        #expect(out.contains { $0.text.hasPrefix("SIP/2.0 487 Request Terminated") && $0.flow == .udp(phone) })
    }

    @Test func nonInviteRequestsGetNo100AndTheirRetransmissionsAreAbsorbedUntilAnswered() throws {
        let edge = try Harness()
        edge.fromPhone(request("OPTIONS", callID: "o1"))
        #expect(edge.sink.sent.count == 1)
        let options = try #require(edge.sink.sent.first)
        edge.fromPhone(request("OPTIONS", callID: "o1"))
        #expect(edge.sink.sent.count == 1, "nothing to resend yet, nothing to the core")
        edge.fromCore(options.flow.address, response(to: options.text, 200, "OK"))
        let ok = try #require(edge.sink.sent.last)
        #expect(ok.flow == .udp(phone))
        edge.fromPhone(request("OPTIONS", callID: "o1"))
        #expect(edge.sink.sent.last?.text == ok.text)
        #expect(edge.counters.transactions.retransmissionsAbsorbed == 2)
    }

    @Test func inDialogRequestsAndTwoHundredAcksStayStateless() throws {
        let edge = try Harness()
        edge.fromPhone(request("BYE", callID: "d1", toTag: "t1"))
        edge.fromPhone(request("ACK", callID: "d2", branch: "z9hG4bKack2", toTag: "t1"))
        #expect(edge.sink.sent.count == 2)
        #expect(edge.sink.sent.allSatisfy { $0.flow.address == coreA || $0.flow.address == coreB })
        #expect(edge.counters.transactions.active == [0, 0, 0, 0])
    }

    @Test func aFullTableAnswersNewInvites503WithRetryAfterAndKeepsTheLiveOnes() throws {
        let edge = try Harness(maxPerWorker: 16)
        for call in 0..<8 { edge.fromPhone(request(callID: "full-\(call)", branch: "z9hG4bKfull\(call)")) }
        #expect(edge.counters.transactions.active == [8, 0, 8, 0])
        let mark = edge.sink.sent.count
        edge.fromPhone(request(callID: "one-too-many", branch: "z9hG4bKmany"))
        let refusal = try #require(edge.sent(since: mark).first)
        #expect(refusal.text.hasPrefix("SIP/2.0 503 Service Unavailable"))
        #expect(refusal.text.contains("Retry-After: 5\r\n"))
        #expect(edge.counters.transactions.refused == 1)
        // A live transaction still matches: its retransmission is absorbed.
        edge.fromPhone(request(callID: "full-3", branch: "z9hG4bKfull3"))
        #expect(edge.sink.sent.last?.text.hasPrefix("SIP/2.0 100 Trying") == true)
    }

    @Test func everyRecordIsFreedWhenItsTimersRunOut() throws {
        let edge = try Harness()
        for call in 0..<20 {
            edge.fromPhone(request(callID: "life-\(call)", branch: "z9hG4bKlife\(call)"))
            let invite = try #require(edge.sink.sent.last { $0.text.hasPrefix("INVITE") })
            edge.fromCore(invite.flow.address, response(to: invite.text, call % 2 == 0 ? 200 : 404, "X"))
            edge.fromPhone(request("ACK", callID: "life-\(call)", branch: "z9hG4bKlife\(call)"))
        }
        #expect(edge.counters.transactions.active[0] == 20)
        edge.advance(to: 64 * 500 + 1_000)
        #expect(edge.counters.transactions.active == [0, 0, 0, 0])
        #expect(edge.counters.transactions.timeouts == 0)
    }
}
