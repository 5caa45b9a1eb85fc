import Foundation
import SIPBytes
import SIPSettings
import SIPUring
import SIPTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// One side of an in-memory connection: its session, the plaintext it received, how its reads ended.
final class Endpoint {
    let session: TLSSession
    var received: [UInt8] = []
    var status: TLSReadStatus = .wantMore
    /// Largest piece of ciphertext handed to `feed` at once (odd sizes exercise record reassembly).
    let feedChunk: Int

    init(_ session: TLSSession, feedChunk: Int = 1 << 20) {
        self.session = session
        self.feedChunk = feedChunk
    }

    /// Feeds `ciphertext` in pieces, reading after each one, until its reads stop making progress.
    func receive(_ ciphertext: [UInt8]) {
        var offset = 0
        repeat {
            let end = min(offset + feedChunk, ciphertext.count)
            session.feed(ciphertext[offset..<end])
            offset = end
            drain()
        } while offset < ciphertext.count
    }

    /// Reads until the session wants more input (or is closed / failed); bounded by the data it can hold.
    func drain() {
        for _ in 0..<10_000 {
            let result = session.readPlaintext(appendingTo: &received, limit: 4_096)
            if case .progress = result { continue }
            status = result
            return
        }
    }

    var failure: String? {
        if case .failed(let reason) = status { return reason }
        return nil
    }
}

/// Moves ciphertext between the two endpoints until neither has any left (at most `rounds` exchanges).
func pump(_ client: Endpoint, _ server: Endpoint, rounds: Int = 200) {
    client.drain()
    for _ in 0..<rounds {
        var toServer: [UInt8] = []
        client.session.takeCiphertext(appendingTo: &toServer)
        if !toServer.isEmpty { server.receive(toServer) }
        var toClient: [UInt8] = []
        server.session.takeCiphertext(appendingTo: &toClient)
        if !toClient.isEmpty { client.receive(toClient) }
        if toServer.isEmpty && toClient.isEmpty && !client.session.hasCiphertext && !server.session.hasCiphertext {
            return
        }
    }
}

@Suite struct TLSSessionTests {
    func serverConfiguration(_ certificates: TestCertificates) -> TLSConfiguration {
        TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: certificates.serverKey)
    }

    func clientConfiguration(_ certificates: TestCertificates) -> TLSConfiguration {
        TLSConfiguration(caPath: certificates.caCertificate, requirePeerCertificate: true)
    }

    @Test func handshakeCompletesInTLS13AndDataFlowsBothWays() throws {
        try withCertificates { certificates in
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverConfiguration(certificates))))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientConfiguration(certificates)),
                                                 serverName: "localhost"))
            #expect(client.session.hasCiphertext, "a client's ClientHello is ready as soon as the session exists")
            pump(client, server)
            #expect(client.session.isHandshakeComplete && server.session.isHandshakeComplete)
            #expect(client.session.protocolVersion == "TLSv1.3")
            #expect(server.session.protocolVersion == "TLSv1.3")
            #expect(client.session.peerSubject == "CN=localhost", "the client verified the server against the CA")
            #expect(server.session.peerSubject == nil, "no client certificate was asked for")

            let options = Array("OPTIONS sip:edge@localhost SIP/2.0\r\nContent-Length: 0\r\n\r\n".utf8)
            #expect(client.session.write(options[...]))
            pump(client, server)
            #expect(server.received == options)
            let reply = Array("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
            #expect(server.session.write(reply[...]))
            pump(client, server)
            #expect(client.received == reply)
            #expect(client.status == .wantMore && server.status == .wantMore)
        }
    }

    @Test func serverAtMinimum12AndClientCappedAt12NegotiateTLS12() throws {
        try withCertificates { certificates in
            var serverSettings = serverConfiguration(certificates)
            serverSettings.minimumVersion = .tls12
            var clientSettings = clientConfiguration(certificates)
            clientSettings.maximumVersion = .tls12
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverSettings)))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientSettings), serverName: "localhost"))
            pump(client, server)
            #expect(client.session.isHandshakeComplete && server.session.isHandshakeComplete)
            #expect(client.session.protocolVersion == "TLSv1.2")
            #expect(server.session.protocolVersion == "TLSv1.2")
            let message = Array("MESSAGE sip:a@localhost SIP/2.0\r\n\r\n".utf8)
            #expect(client.session.write(message[...]))
            pump(client, server)
            #expect(server.received == message)
        }
    }

    @Test func serverRequiringTLS13RefusesAClientCappedAt12() throws {
        try withCertificates { certificates in
            var serverSettings = serverConfiguration(certificates)
            serverSettings.minimumVersion = .tls13
            var clientSettings = clientConfiguration(certificates)
            clientSettings.maximumVersion = .tls12
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverSettings)))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientSettings), serverName: "localhost"))
            pump(client, server)
            #expect(!server.session.isHandshakeComplete)
            let reason = try #require(server.failure)
            #expect(reason.contains("unsupported protocol"), "\(reason)")
            #expect(client.failure != nil, "the client hears the alert")
        }
    }

    @Test func hundredKilobytesInOddChunksRoundTripBothWays() throws {
        try withCertificates { certificates in
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverConfiguration(certificates))),
                                  feedChunk: 977)
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientConfiguration(certificates)),
                                                 serverName: "localhost"), feedChunk: 7)
            // Written before the handshake: held by the session and sent as soon as the handshake completes.
            let early = Array("REGISTER sip:localhost SIP/2.0\r\n\r\n".utf8)
            #expect(client.session.write(early[...]))
            pump(client, server)
            #expect(server.received == early)
            server.received = []

            let payload = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            let chunkSizes = [1, 7, 13, 333, 1_021, 4_099, 16_385, 17]
            var offset = 0
            var turn = 0
            while offset < payload.count {
                let end = min(offset + chunkSizes[turn % chunkSizes.count], payload.count)
                #expect(client.session.write(payload[offset..<end]))
                #expect(server.session.write(payload[offset..<end]))
                offset = end
                turn += 1
                if turn % 5 == 0 { pump(client, server) }
            }
            pump(client, server)
            #expect(server.received.count == payload.count)
            #expect(server.received == payload)
            #expect(client.received == payload)
        }
    }

    @Test func borrowedPacketBytesCanBeFedWithoutCopyingIntoAnArray() throws {
        try withCertificates { certificates in
            let server = try TLSSession(context: try TLSContext(server: serverConfiguration(certificates)))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientConfiguration(certificates)),
                                                 serverName: "localhost"))
            var plaintext: [UInt8] = []
            for _ in 0..<20 where !(server.isHandshakeComplete && client.session.isHandshakeComplete) {
                var hello: [UInt8] = []
                client.session.takeCiphertext(appendingTo: &hello)
                #expect(hello.withPacketBytes { server.feed($0) })
                _ = server.readPlaintext(appendingTo: &plaintext, limit: 1_024)
                var reply: [UInt8] = []
                server.takeCiphertext(appendingTo: &reply)
                client.receive(reply)
            }
            #expect(server.isHandshakeComplete && client.session.isHandshakeComplete)
        }
    }

    @Test func closeNotifyIsReportedAsClosedAfterTheDataBeforeIt() throws {
        try withCertificates { certificates in
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverConfiguration(certificates))))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientConfiguration(certificates)),
                                                 serverName: "localhost"))
            pump(client, server)
            let bye = Array("BYE sip:a@localhost SIP/2.0\r\n\r\n".utf8)
            #expect(client.session.write(bye[...]))
            #expect(client.session.shutdown())
            #expect(!client.session.write(bye[...]), "no writes after close_notify")
            pump(client, server)
            #expect(server.received == bye)
            #expect(server.status == .closed)
        }
    }

    @Test func mutualTLSRefusesAClientWithoutACertificateAndAcceptsOneSignedByTheCA() throws {
        try withCertificates { certificates in
            var serverSettings = serverConfiguration(certificates)
            serverSettings.caPath = certificates.caCertificate
            serverSettings.requirePeerCertificate = true
            let serverContext = try TLSContext(server: serverSettings)

            // No certificate: the server refuses, with a reason a person can read.
            let refused = Endpoint(try TLSSession(context: serverContext))
            let anonymous = Endpoint(try TLSSession(context: try TLSContext(client: clientConfiguration(certificates)),
                                                    serverName: "localhost"))
            pump(anonymous, refused)
            let reason = try #require(refused.failure)
            #expect(reason.contains("did not return a certificate"), "\(reason)")
            #expect(!refused.session.isHandshakeComplete)
            #expect(refused.received.isEmpty)
            let clientReason = try #require(anonymous.failure, "the client hears the alert")
            #expect(clientReason.contains("certificate required"), "\(clientReason)")

            // A certificate from the CA: accepted, and the server knows who it is.
            var clientSettings = clientConfiguration(certificates)
            clientSettings.certificatePath = certificates.clientCertificate
            clientSettings.privateKeyPath = certificates.clientKey
            let accepted = Endpoint(try TLSSession(context: serverContext))
            let known = Endpoint(try TLSSession(context: try TLSContext(client: clientSettings), serverName: "localhost"))
            pump(known, accepted)
            #expect(accepted.session.isHandshakeComplete && known.session.isHandshakeComplete)
            #expect(accepted.failure == nil && known.failure == nil)
            let subject = try #require(accepted.session.peerSubject)
            #expect(subject.contains("CN=\(TestCertificates.clientCommonName)"), "\(subject)")
            let invite = Array("INVITE sip:b@localhost SIP/2.0\r\n\r\n".utf8)
            #expect(known.session.write(invite[...]))
            pump(known, accepted)
            #expect(accepted.received == invite)
        }
    }

    @Test func mutualTLSRefusesAClientCertificateFromAnotherCA() throws {
        try withCertificates { certificates in
            var serverSettings = serverConfiguration(certificates)
            serverSettings.caPath = certificates.otherCA
            serverSettings.requirePeerCertificate = true
            var clientSettings = clientConfiguration(certificates)
            clientSettings.certificatePath = certificates.clientCertificate
            clientSettings.privateKeyPath = certificates.clientKey
            let server = Endpoint(try TLSSession(context: try TLSContext(server: serverSettings)))
            let client = Endpoint(try TLSSession(context: try TLSContext(client: clientSettings), serverName: "localhost"))
            pump(client, server)
            let reason = try #require(server.failure)
            #expect(reason.contains("certificate verify failed"), "\(reason)")
            #expect(server.session.peerSubject == nil)
        }
    }

    @Test func clientRefusesAServerWithTheWrongNameOrAnUnknownIssuer() throws {
        try withCertificates { certificates in
            let serverContext = try TLSContext(server: serverConfiguration(certificates))
            let verifying = try TLSContext(client: clientConfiguration(certificates))

            let wrongName = Endpoint(try TLSSession(context: verifying, serverName: "proxy.example.com"))
            let server1 = Endpoint(try TLSSession(context: serverContext))
            pump(wrongName, server1)
            let nameReason = try #require(wrongName.failure)
            #expect(nameReason.contains("hostname mismatch"), "\(nameReason)")

            // An IP address is checked against the certificate's IP entries (and not sent as SNI).
            let byAddress = Endpoint(try TLSSession(context: verifying, serverName: "127.0.0.1"))
            let server2 = Endpoint(try TLSSession(context: serverContext))
            pump(byAddress, server2)
            #expect(byAddress.session.isHandshakeComplete && byAddress.failure == nil)

            var otherTrust = clientConfiguration(certificates)
            otherTrust.caPath = certificates.otherCA
            let unknownIssuer = Endpoint(try TLSSession(context: try TLSContext(client: otherTrust), serverName: "localhost"))
            let server3 = Endpoint(try TLSSession(context: serverContext))
            pump(unknownIssuer, server3)
            let issuerReason = try #require(unknownIssuer.failure)
            #expect(issuerReason.contains("unable to get local issuer certificate"), "\(issuerReason)")
        }
    }

    @Test func setupErrorsNameTheProblem() throws {
        try withCertificates { certificates in
            let missing = certificates.directory + "/missing.pem"
            func failure(_ settings: TLSConfiguration) -> String {
                let error = #expect(throws: TLSError.self) { try TLSContext(server: settings) }
                return error?.message ?? ""
            }
            let noCertificate = failure(TLSConfiguration(certificatePath: missing, privateKeyPath: certificates.serverKey))
            #expect(noCertificate == "certificate file \(missing): No such file or directory")
            let noKey = failure(TLSConfiguration(certificatePath: certificates.serverCertificate, privateKeyPath: missing))
            #expect(noKey == "private key file \(missing): No such file or directory")
            let otherKey = failure(TLSConfiguration(certificatePath: certificates.serverCertificate,
                                                    privateKeyPath: certificates.clientKey))
            #expect(otherKey == "private key \(certificates.clientKey) does not match certificate \(certificates.serverCertificate)")
            let keyAsCertificate = failure(TLSConfiguration(certificatePath: certificates.serverKey,
                                                            privateKeyPath: certificates.serverKey))
            #expect(keyAsCertificate.hasPrefix("certificate file \(certificates.serverKey): "), "\(keyAsCertificate)")

            var badCA = serverConfiguration(certificates)
            badCA.caPath = missing
            #expect(failure(badCA) == "CA file \(missing): No such file or directory")
            var noCA = serverConfiguration(certificates)
            noCA.requirePeerCertificate = true
            #expect(failure(noCA) == "requiring client certificates needs a CA file to verify them against")
            #expect(failure(TLSConfiguration()) == "a TLS server needs a certificate file and a private key file")
            var badCiphers = serverConfiguration(certificates)
            badCiphers.ciphers = "NO-SUCH-CIPHER"
            #expect(failure(badCiphers).hasPrefix("cipher list: "))
        }
    }

    @Test func sessionsOutliveTheContextObjectTheyWereMadeFrom() throws {
        try withCertificates { certificates in
            // The reload case: new connections move to a new context and the old TLSContext object goes away,
            // while sessions made from it keep working (OpenSSL keeps the SSL_CTX alive for them).
            var serverContext: TLSContext? = try TLSContext(server: serverConfiguration(certificates))
            var clientContext: TLSContext? = try TLSContext(client: clientConfiguration(certificates))
            weak let releasedServer = serverContext
            weak let releasedClient = clientContext
            let server = Endpoint(try TLSSession(context: serverContext!))
            let client = Endpoint(try TLSSession(context: clientContext!, serverName: "localhost"))
            serverContext = nil
            clientContext = nil
            #expect(releasedServer == nil && releasedClient == nil, "the sessions do not keep the Swift objects")
            pump(client, server)
            #expect(client.session.isHandshakeComplete && server.session.isHandshakeComplete)
            let notify = Array("NOTIFY sip:a@localhost SIP/2.0\r\n\r\n".utf8)
            #expect(client.session.write(notify[...]))
            pump(client, server)
            #expect(server.received == notify)
        }
    }

    @Test func opensslSClientHandshakesWithALoopbackServerAndItsPlaintextArrives() throws {
        try withCertificates { certificates in
            let context = try TLSContext(server: serverConfiguration(certificates))
            let listener = try LoopbackListener()
            let log = certificates.directory + "/s_client.log"
            #expect(FileManager.default.createFile(atPath: log, contents: nil))
            let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
            defer { try? logHandle.close() }
            let input = Pipe()
            let client = Process()
            client.executableURL = URL(fileURLWithPath: TestCertificates.openssl)
            client.arguments = ["s_client", "-connect", "127.0.0.1:\(listener.port)", "-CAfile", certificates.caCertificate,
                                "-servername", "localhost", "-verify_return_error"]
            client.standardInput = input
            client.standardOutput = logHandle
            client.standardError = logHandle
            try client.run()
            defer { ChildProcess.stop(client) }

            let line = Array("OPTIONS sip:edge@localhost SIP/2.0\r\n".utf8)
            input.fileHandleForWriting.write(Data(line))

            let connection = try #require(listener.accept(timeoutMilliseconds: 10_000), "s_client never connected")
            defer { close(connection) }
            let session = try TLSSession(context: context)
            var received: [UInt8] = []
            var status = TLSReadStatus.wantMore
            var inputClosed = false
            let deadline = Date().addingTimeInterval(15)
            var chunk = [UInt8](repeating: 0, count: 4_096)
            pumping: while Date() < deadline {
                var readable = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
                if poll(&readable, 1, 100) > 0 {
                    let count = recv(connection, &chunk, chunk.count, 0)
                    if count <= 0 { break }  // s_client closed the TCP connection
                    session.feed(chunk[0..<count])
                }
                readLoop: for _ in 0..<100 {
                    status = session.readPlaintext(appendingTo: &received, limit: 4_096)
                    switch status {
                    case .progress: continue
                    case .wantMore: break readLoop
                    case .closed, .failed: break readLoop
                    }
                }
                var out: [UInt8] = []
                session.takeCiphertext(appendingTo: &out)
                if !out.isEmpty, !sendAll(out, on: connection) { break }
                if case .failed = status { break }
                if status == .closed { break pumping }
                if !inputClosed, received.count >= line.count {
                    // The line arrived; end s_client's input so it closes the TLS session with close_notify.
                    try input.fileHandleForWriting.close()
                    inputClosed = true
                }
            }
            #expect(received == line, "\(String(decoding: received, as: UTF8.self))")
            #expect(session.isHandshakeComplete)
            #expect(session.protocolVersion == "TLSv1.3")
            #expect(status == .closed, "s_client ends with close_notify once its input ends")
            let transcript = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(transcript.contains("Verify return code: 0 (ok)"), "\(transcript)")
        }
    }
}

/// A blocking loopback TCP listener on 127.0.0.1 with a kernel-chosen port (test only).
final class LoopbackListener {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TLSError("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else {
            let error = errno
            close(fd)
            throw TLSError("bind/listen 127.0.0.1: errno \(error)")
        }
        descriptor = fd
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit {
        close(descriptor)
    }

    /// Waits up to `timeoutMilliseconds` for one connection; nil when none came.
    func accept(timeoutMilliseconds: Int32) -> Int32? {
        var readable = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&readable, 1, timeoutMilliseconds) > 0 else { return nil }
        let fd = Glibc.accept(descriptor, nil, nil)
        return fd >= 0 ? fd : nil
    }
}

/// Writes all of `bytes` to a blocking socket; false when the peer is gone.
func sendAll(_ bytes: [UInt8], on descriptor: Int32) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent <= 0 { return false }
        offset += sent
    }
    return true
}
