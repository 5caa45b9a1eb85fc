import Foundation
import SIPBytes
import SIPUring
import Testing

extension ProcessHarness {
    /// Starts dnsmasq answering only for `.test` (NXDOMAIN for unknown names there, REFUSED elsewhere) with
    /// `records` options, and waits (5 s at most) until it answers `probe`.
    static func startDnsmasq(port: Int, records: [String], probe: String, log: String) throws -> Process {
        let executable = try #require(ProcessHarness.which("dnsmasq")
                                          ?? (FileManager.default.isExecutableFile(atPath: "/usr/sbin/dnsmasq")
                                                  ? "/usr/sbin/dnsmasq" : nil),
                                      "dnsmasq must be installed (scripts/install-deps.sh: dnsmasq-base)")
        var arguments = ["--keep-in-foreground", "--port=\(port)", "--listen-address=127.0.0.1", "--bind-interfaces",
                         "--no-resolv", "--no-hosts", "--conf-file=/dev/null", "--pid-file=", "--log-facility=-",
                         "--local=/test/"]
        // As root, dnsmasq would drop to "nobody", who may not read the test's files; otherwise it changes nothing.
        if getuid() == 0 { arguments.append("--user=root") }
        let process = try ProcessHarness.start(executable, arguments + records, log: log)
        let probeResolver = try DNSResolver(servers: [EndpointAddress.parse("127.0.0.1", port: UInt16(port))!],
                                            timeoutMilliseconds: 200, tries: 2)
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if (try? probeResolver.addresses(probe)) != nil { return process }
            if !ProcessHarness.isRunning(process) { break }
            usleep(50_000)
        }
        ProcessHarness.stop(process)
        throw DnsmasqDidNotAnswer(description: "dnsmasq did not answer: \(ProcessHarness.logContents(log))")
    }

    struct DnsmasqDidNotAnswer: Error, CustomStringConvertible {
        let description: String
    }
}
