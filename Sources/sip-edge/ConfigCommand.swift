import ArgumentParser
import Foundation
import SIPConfig
import SIPProxyCore
import SIPUring

/// `sip-edge config`: prints the embedded defaults, or checks a file (for systemd's ExecStartPre and reloads).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Print the embedded default configuration, or check a configuration file.",
        discussion: "With --check FILE: prints 'ok' and exits 0, or prints the bad key and exits 2."
    )

    @Flag(help: "Print the embedded default configuration (YAML, commented).")
    var defaults = false

    @Option(help: "Check this YAML file without starting anything.")
    var check: String?

    func run() throws {
        if let check {
            guard let data = FileManager.default.contents(atPath: check) else {
                throw ValidationError("cannot read \(check)")
            }
            do {
                let edge = try EdgeConfiguration.parse(yaml: String(decoding: data, as: UTF8.self),
                                                       over: EdgeConfiguration.defaults())
                // Certificates and keys are loaded as a start or a reload would, so a renewal that does not load
                // (wrong key, unreadable file) is caught before systemd sends SIGHUP.
                if edge.servesTLS { _ = try TLSContext(server: edge.tls) }
                if edge.upstreamTransport == .tls { _ = try TLSContext(client: edge.upstreamTLS) }
                print("ok")
            } catch {
                FileHandle.standardError.write(Data("\(check): \(error)\n".utf8))
                throw ExitCode(2)
            }
            return
        }
        guard defaults else { throw ValidationError("give --defaults or --check FILE") }
        print(EdgeConfiguration.defaultsYAML, terminator: "")
    }
}
