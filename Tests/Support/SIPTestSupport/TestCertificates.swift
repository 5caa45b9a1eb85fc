import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why a test PKI could not be made.
public struct CertificateError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A throwaway PKI made with the `openssl` command line in a temporary directory: a CA, a server certificate for
/// CN=localhost and a client certificate, both signed by the CA, plus a second CA that signed nothing here.
/// EC P-256 keys, valid one day. Removed by ``withCertificates(_:)``.
public struct TestCertificates {
    public let directory: String
    public var caCertificate: String { directory + "/ca.pem" }
    public var otherCA: String { directory + "/other-ca.pem" }
    public var serverCertificate: String { directory + "/server.pem" }
    public var serverKey: String { directory + "/server.key" }
    public var clientCertificate: String { directory + "/client.pem" }
    public var clientKey: String { directory + "/client.key" }
    /// A second server certificate (CN=renewed.localhost) from the same CA: what a renewal puts on disk.
    public var renewedServerCertificate: String { directory + "/renewed.pem" }
    public var renewedServerKey: String { directory + "/renewed.key" }

    public static let clientCommonName = "sip-client.example"

    public static var openssl: String {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(directory)/openssl"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "/usr/bin/openssl"
    }

    /// Runs `openssl` with `arguments` in `directory`, at most 20 s; throws when it fails.
    public static func runOpenSSL(_ arguments: [String], in directory: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        guard ChildProcess.waitForExit(process, seconds: 20) else {
            ChildProcess.stop(process)
            throw CertificateError("openssl \(arguments.first ?? "") timed out")
        }
        let status = ChildProcess.exitStatus(process)
        guard status == 0 else {
            throw CertificateError("openssl \(arguments.joined(separator: " ")) exited \(status)")
        }
    }

    public static func make() throws -> TestCertificates {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("sipedge-tls-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        let leaf = ["-days", "1", "-CA", "ca.pem", "-CAkey", "ca.key", "-addext", "basicConstraints=critical,CA:FALSE"]
        for name in ["ca", "other-ca", "server", "client", "renewed"] {
            try runOpenSSL(["genpkey"] + ec + ["-out", "\(name).key"], in: directory)
        }
        try runOpenSSL(["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=SIPEdge Test CA", "-days", "1",
                        "-out", "ca.pem"], in: directory)
        try runOpenSSL(["req", "-x509", "-new", "-key", "other-ca.key", "-subj", "/CN=Unrelated CA", "-days", "1",
                        "-out", "other-ca.pem"], in: directory)
        try runOpenSSL(["req", "-new", "-key", "server.key", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", "server.pem"] + leaf,
                       in: directory)
        try runOpenSSL(["req", "-new", "-key", "client.key", "-subj", "/CN=\(clientCommonName)/O=SIPEdge Tests",
                        "-out", "client.pem"] + leaf, in: directory)
        try runOpenSSL(["req", "-new", "-key", "renewed.key", "-subj", "/CN=renewed.localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", "renewed.pem"] + leaf,
                       in: directory)
        return TestCertificates(directory: directory)
    }
}

/// Runs `body` with a fresh PKI and removes it afterwards.
public func withCertificates(_ body: (TestCertificates) throws -> Void) throws {
    let certificates = try TestCertificates.make()
    defer { try? FileManager.default.removeItem(atPath: certificates.directory) }
    try body(certificates)
}

