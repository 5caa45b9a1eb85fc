import Foundation
import SIPSecurity
import SIPSettings
@testable import SIPTransport
import Testing

/// The audit log writes attacker-controlled text (Call-IDs, methods): it must come out as inert JSON.
@Suite struct AuditLogTests {
    @Test func attackerTextIsEscapedIntoValidJSON() throws {
        let hostile = "x\"},\"rule\":\"none\u{0}\u{1b}[31m\\\n\r<script>é日本"
        let encoded = AuditLog.jsonString(hostile)
        // Only printable ASCII leaves the encoder: no raw control bytes, no raw non-ASCII.
        #expect(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7F })
        let decoded = try JSONSerialization.jsonObject(with: Data("[\(encoded)]".utf8)) as? [String]
        #expect(decoded?.first == hostile)
    }

    @Test func longValuesAreCut() {
        let encoded = AuditLog.jsonString(String(repeating: "a", count: 1_000))
        #expect(encoded.count == 130)  // 128 characters and the quotes
    }

    @Test func linesAreCappedPerSecondAndTheGapIsReported() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(getpid()).jsonl").path
        try? FileManager.default.removeItem(atPath: path)
        let log = try AuditLog(destination: .file(path), linesPerSecond: 3, worker: 7)
        let source = EndpointAddressFixture.client
        for i in 0..<10 {
            log.record(rule: .sqlInjection, action: "reject", status: 403, source: source, method: "INVITE",
                       callID: "call-\(i)", now: 5_000)
        }
        log.record(rule: .sqlInjection, action: "reject", status: 403, source: source, method: "INVITE",
                   callID: "next-second", now: 6_001)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        #expect(log.suppressed == 7)
        let last = try JSONSerialization.jsonObject(with: Data(lines[3].utf8)) as? [String: Any]
        #expect(last?["suppressed_before"] as? Int == 7)
        #expect(last?["call_id"] as? String == "next-second")
        #expect(last?["worker"] as? Int == 7)
        #expect(last?["source"] as? String == "192.0.2.44:5062")
    }
}

import SIPBytes

enum EndpointAddressFixture {
    static let client = EndpointAddress.parse("192.0.2.44", port: 5062)!
}
