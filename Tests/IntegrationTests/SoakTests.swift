import Foundation
import Testing

/// The two-minute form of perf/soak.sh through the binary: steady SIPp calls, REGISTER churn over UDP, TCP and
/// TLS connection churn, a SIGHUP reload (policy and renewed certificate) every 30 s; memory and descriptors must
/// stay flat, no counter may go backwards, no call or registration may fail.
@Suite struct SoakTests {
    @Test func twoMinutesOfCallsChurnAndReloadsLeaveMemoryAndDescriptorsFlat() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("soak-\(getpid())")
        try? FileManager.default.removeItem(at: out)
        let script = ProcessHarness.repositoryRoot.appendingPathComponent("perf/soak.sh").path
        // The short run's slopes are noisier than the 30-minute run's (README): a connection open or not at a
        // sample is ±1 descriptor over 80 s, and the debug build's heap and RSS settle for longer (jemalloc's
        // caches wobble by ±150 KiB). The bounds here still catch a descriptor per 1% of the 15 connections a
        // second (9 a minute) and a leak of 300 bytes per connection (the live heap's slope). RSS also moves in
        // steps of a few hundred KiB as jemalloc keeps or returns dirty pages: when the debug build's last step
        // lands after the warm-up (a busy machine starts it later) the 80 s slope read 257 and 313 KiB/min with the
        // live heap falling (-302, -260) and the release build at -40; so RSS is held to twice the heap's bound,
        // a growth the heap does not show, and the heap bound stays the leak check.
        let status = try ProcessHarness.run(
            "/bin/bash", [script, "120"], timeout: 240, log: "soak.log",
            environment: ["BIN": ProcessHarness.sipEdgeBinary.path, "OUT": out.path, "PLOT": "0",
                          "PORT_BASE": "\(ProcessHarness.portBase(.soak))", "RELOAD_EVERY": "30",
                          "FD_SLOPE_PER_MIN": "2", "RSS_SLOPE_KIB_PER_MIN": "512", "HEAP_SLOPE_KIB_PER_MIN": "256",
                          "WARMUP": "40", "RATE": "15"])
        let summary = (try? String(contentsOf: out.appendingPathComponent("summary.txt"), encoding: .utf8)) ?? ""
        #expect(status == 0, "soak failed:\n\(ProcessHarness.logContents("soak.log"))")
        #expect(summary.hasPrefix("soak PASS"), "\(summary)")
        // Read the samples here too: the run really ran (13 samples, traffic growing), and the reloads happened.
        let csv = try String(contentsOf: out.appendingPathComponent("soak.csv"), encoding: .utf8)
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",").compactMap { Int($0) } }
        #expect(rows.count >= 12, "\(csv)")
        let forwarded = rows.map { $0[4] }
        #expect(forwarded.last ?? 0 > 1_000, "\(csv)")
        #expect(zip(forwarded, forwarded.dropFirst()).allSatisfy { $0 <= $1 }, "\(csv)")
        #expect(rows.last?[8] ?? 0 >= 3, "three reloads in two minutes:\n\(csv)")
        #expect(summary.contains("calls: ") && !summary.contains(" 0 successful"), "\(summary)")
    }
}
