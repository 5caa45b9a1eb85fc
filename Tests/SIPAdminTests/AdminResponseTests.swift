import Foundation
import SIPMetrics
import Testing

@testable import SIPAdmin

/// The admin server's answers to crafted request heads, without sockets: status codes, HEAD, the head limit.
@Suite struct AdminResponseTests {
    /// A response split at its empty line: status line, headers (name → value), body.
    struct Parsed {
        var statusLine: String
        var headers: [String: String]
        var headerLines: [Substring]
        var body: String

        init(_ bytes: [UInt8]) throws {
            let text = String(decoding: bytes, as: UTF8.self)
            let end = try #require(text.range(of: "\r\n\r\n"), "no end of head in \(text)")
            let lines = text[..<end.lowerBound].split(separator: "\r\n", omittingEmptySubsequences: false)
            statusLine = String(lines[0])
            headerLines = Array(lines.dropFirst())
            headers = [:]
            for line in headerLines {
                let colon = try #require(line.firstIndex(of: ":"), "header line without colon: \(line)")
                headers[String(line[..<colon])] = line[line.index(after: colon)...].trimmingPrefix(" ").description
            }
            body = String(text[end.upperBound...])
        }

        var status: Int? { Int(statusLine.split(separator: " ").dropFirst().first ?? "") }
    }

    func server(workersUp: Bool = true, upstreamUp: Bool? = true, limits: AdminLimits = AdminLimits()) -> AdminServer {
        let board = MetricsBoard(workers: 2)
        if workersUp { for worker in 0..<2 { board.markUp(worker: worker, true) } }
        var status: AdminServer.UpstreamStatus?
        if let upstreamUp {
            // Two upstreams: the first follows `upstreamUp`, the second is down and went down once.
            var first = UpstreamStateSample(upstream: "192.0.2.1:5060", isUp: upstreamUp, isMember: true)
            first.becameDown = upstreamUp ? 0 : 1
            var second = UpstreamStateSample(upstream: "192.0.2.2:5060", isUp: false, isMember: true)
            second.becameDown = 2
            second.becameUp = 1
            let gone = UpstreamStateSample(upstream: "192.0.2.3:5060", isUp: false, isMember: false)
            let report = UpstreamReport(ready: upstreamUp, upstreams: [first, second, gone])
            status = { report }
        }
        return AdminServer(board: board, upstreamStatus: status, limits: limits)
    }

    func respond(_ head: String, by server: AdminServer? = nil) throws -> Parsed {
        try Parsed((server ?? self.server()).respond(to: Array(head.utf8)))
    }

    @Test func defaultLimitsAreTheDocumentedOnes() {
        let limits = AdminLimits()
        #expect(limits.requestTimeout == .seconds(2))
        #expect(limits.sendTimeout == .seconds(1))
        #expect(limits.maxConnections == 256)
        #expect(limits.maxRequestHeadBytes == 8_192)
        #expect(AdminServer(board: MetricsBoard(workers: 1)).limits == limits)
    }

    @Test(arguments: ["/metrics", "/health/live", "/health/ready", "/health/live?verbose=1"])
    func knownPathsAnswer200(path: String) throws {
        let response = try respond("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(response.statusLine == "HTTP/1.1 200 OK")
        #expect(response.headers["Connection"] == "close")
        #expect(response.headers["Content-Length"] == "\(response.body.utf8.count)")
        #expect(!response.body.isEmpty)
    }

    @Test func metricsAreThePrometheusTextFormat() throws {
        let response = try respond("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(response.status == 200)
        #expect(response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(response.body.contains("process_start_time_seconds "))
        #expect(response.body.contains("sip_upstream_up{upstream=\"192.0.2.1:5060\"} 1\n"))
        #expect(response.body.contains("sip_upstream_up{upstream=\"192.0.2.2:5060\"} 0\n"))
        // An upstream DNS removed keeps its counters (they never go backwards) but has no up gauge.
        #expect(!response.body.contains("sip_upstream_up{upstream=\"192.0.2.3:5060\"}"))
        #expect(response.body.contains("sip_upstream_state_changes_total{upstream=\"192.0.2.2:5060\",state=\"down\"} 2\n"))
        #expect(response.body.contains("sip_upstream_state_changes_total{upstream=\"192.0.2.2:5060\",state=\"up\"} 1\n"))
        #expect(response.body.contains("sip_upstream_state_changes_total{upstream=\"192.0.2.3:5060\",state=\"up\"} 0\n"))
    }

    @Test func withoutAnUpstreamCheckThereIsNoUpstreamGaugeAndWorkersAloneDecideReadiness() throws {
        let unchecked = server(upstreamUp: nil)
        #expect(try !respond("GET /metrics HTTP/1.1\r\n\r\n", by: unchecked).body.contains("sip_upstream_up"))
        #expect(try respond("GET /health/ready HTTP/1.1\r\n\r\n", by: unchecked).status == 200)
        #expect(try respond("GET /health/ready HTTP/1.1\r\n\r\n", by: server(workersUp: false, upstreamUp: nil)).status == 503)
    }

    @Test func readinessIs503AndSaysWhyWhenTheUpstreamIsDown() throws {
        let response = try respond("GET /health/ready HTTP/1.1\r\n\r\n", by: server(upstreamUp: false))
        #expect(response.statusLine == "HTTP/1.1 503 Service Unavailable")
        #expect(response.body == "not ready: workers up, no upstream up and answering OPTIONS\n")
        #expect(try respond("GET /metrics HTTP/1.1\r\n\r\n", by: server(upstreamUp: false)).body
            .contains("sip_upstream_up{upstream=\"192.0.2.1:5060\"} 0"))
        let starting = try respond("GET /health/ready HTTP/1.1\r\n\r\n", by: server(workersUp: false))
        #expect(starting.status == 503)
        #expect(starting.body.contains("workers starting"))
    }

    /// HEAD: the GET's status line and headers, Content-Length of the GET's body included, and no body.
    @Test(arguments: ["/health/live", "/health/ready", "/nope"], [true, false])
    func headHasTheHeadersOfGetAndNoBody(path: String, upstreamUp: Bool) throws {
        let server = server(upstreamUp: upstreamUp)
        let get = try respond("GET \(path) HTTP/1.1\r\n\r\n", by: server)
        let head = try respond("HEAD \(path) HTTP/1.1\r\n\r\n", by: server)
        #expect(head.statusLine == get.statusLine)
        #expect(head.headerLines == get.headerLines)
        #expect(head.headers["Content-Length"] == "\(get.body.utf8.count)")
        #expect(get.body.utf8.count > 0)
        #expect(head.body.isEmpty)
    }

    @Test func headOfMetricsCountsTheBodyItLeavesOut() throws {
        let head = try respond("HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(head.status == 200)
        #expect(head.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(Int(head.headers["Content-Length"] ?? "") ?? 0 > 100)
        #expect(head.body.isEmpty)
    }

    @Test(arguments: ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"])
    func otherMethodsGet405WithAllow(method: String) throws {
        let response = try respond("\(method) /health/live HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(response.statusLine == "HTTP/1.1 405 Method Not Allowed")
        #expect(response.headers["Allow"] == "GET, HEAD")
        #expect(response.headers["Content-Length"] == "\(response.body.utf8.count)")
    }

    @Test(arguments: ["/", "/health", "/health/live/", "/metrics.txt", "*"])
    func unknownPathsGet404(path: String) throws {
        #expect(try respond("GET \(path) HTTP/1.1\r\n\r\n").statusLine == "HTTP/1.1 404 Not Found")
    }

    @Test(arguments: [
        "GET /health/live\r\n\r\n",  // HTTP/0.9 style: no version
        "GET /health/live HTTP/2.0\r\n\r\n",
        "GET /health/live HTTP/3\r\n\r\n",
        "GET /health/live HTTP/1.10\r\n\r\n",
        "GET /health/live HTTPS/1.1\r\n\r\n",
        "GET /health/live http/1.1\r\n\r\n",
        "GET  /health/live HTTP/1.1\r\n\r\n",  // two spaces
        "GET /health/live HTTP/1.1 extra\r\n\r\n",
        "G(T /health/live HTTP/1.1\r\n\r\n",  // not a token
        "GET /health/\u{7F}live HTTP/1.1\r\n\r\n",
        "GET /health/liv\u{E9} HTTP/1.1\r\n\r\n",
        "\r\n\r\n",
        "\u{16}\u{03}\u{01}\u{02}\u{00}\r\n\r\n",  // a TLS ClientHello's first bytes
    ])
    func malformedRequestLinesGet400(head: String) throws {
        #expect(try respond(head).statusLine == "HTTP/1.1 400 Bad Request")
    }

    @Test func http10AndALeadingEmptyLineAreAccepted() throws {
        #expect(try respond("GET /health/live HTTP/1.0\r\n\r\n").status == 200)
        #expect(try respond("\r\nGET /health/live HTTP/1.1\r\n\r\n").status == 200)
    }

    @Test func anIncompleteHeadWaitsForMore() {
        let server = server()
        #expect(server.answer(toReceived: Array("GET /health/live HTTP/1.1\r\nHost: x\r\n".utf8)) == nil)
        #expect(server.answer(toReceived: []) == nil)
        #expect(server.answer(toReceived: Array("GET /health/live HTTP/1.1\r\n\r".utf8)) == nil)
    }

    @Test func bareLineFeedsEndAHeadToo() throws {
        let response = try #require(server().answer(toReceived: Array("GET /health/live HTTP/1.1\nHost: x\n\n".utf8)))
        #expect(try Parsed(response).status == 200)
    }

    @Test func bytesAfterTheHeadAreNotPartOfIt() throws {
        let response = try #require(server().answer(toReceived: Array("GET /health/live HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n".utf8)))
        #expect(try Parsed(response).status == 200)
    }

    @Test func aHeadOverTheLimitGets431() throws {
        let server = server()
        let overLong = "GET /health/live HTTP/1.1\r\nX-Filler: " + String(repeating: "a", count: 9_000) + "\r\n\r\n"
        let response = try Parsed(try #require(server.answer(toReceived: Array(overLong.utf8.prefix(8_192)))))
        #expect(response.statusLine == "HTTP/1.1 431 Request Header Fields Too Large")
        #expect(response.headers["Connection"] == "close")
        // The limit itself: a head of exactly 8 KiB is served, one byte more is not.
        let prefix = "GET /health/live HTTP/1.1\r\nX-Filler: "
        let exact = prefix + String(repeating: "a", count: 8_192 - prefix.utf8.count - 4) + "\r\n\r\n"
        #expect(exact.utf8.count == 8_192)
        #expect(try Parsed(try #require(server.answer(toReceived: Array(exact.utf8)))).status == 200)
        let oneMore = prefix + String(repeating: "a", count: 8_192 - prefix.utf8.count - 3) + "\r\n\r\n"
        #expect(try Parsed(try #require(server.answer(toReceived: Array(oneMore.utf8.prefix(8_192))))).status == 431)
    }

    @Test func theHeadLimitComesFromTheLimits() throws {
        let small = server(limits: AdminLimits(maxRequestHeadBytes: 64))
        let head = "GET /health/live HTTP/1.1\r\nUser-Agent: " + String(repeating: "b", count: 40) + "\r\n\r\n"
        #expect(head.utf8.count > 64)
        #expect(try Parsed(try #require(small.answer(toReceived: Array(head.utf8.prefix(64))))).status == 431)
        #expect(try Parsed(try #require(server().answer(toReceived: Array(head.utf8)))).status == 200)
    }

    @Test func pollTimeoutsRoundUpAndNeverGoNegative() {
        let now = ContinuousClock.now
        #expect(AdminServer.milliseconds(until: now + .microseconds(1_001), from: now) == 2)
        #expect(AdminServer.milliseconds(until: now + .milliseconds(200), from: now) == 200)
        #expect(AdminServer.milliseconds(until: now, from: now) == 0)
        #expect(AdminServer.milliseconds(until: now - .milliseconds(5), from: now) == 0)
    }
}
