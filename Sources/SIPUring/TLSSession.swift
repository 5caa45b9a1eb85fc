public import SIPBytes
public import SIPSettings
import CSIPTLS

/// A TLS setup that failed, with OpenSSL's reason ("certificate file /x: No such file or directory",
/// "private key /k does not match certificate /c").
public struct TLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// Certificates, key and TLS settings, loaded and checked once; every connection's ``TLSSession`` is made from it.
///
/// `@unchecked Sendable`: it wraps an OpenSSL `SSL_CTX`, which is only read once built (nothing here mutates it
/// after `init`) and which OpenSSL documents as safe to share across threads for creating sessions; its reference
/// count is atomic. Every session holds its own reference, so a reload can build a new context and drop this one
/// while existing connections keep using it.
public final class TLSContext: @unchecked Sendable {
    let handle: OpaquePointer
    public let configuration: TLSConfiguration
    public let isServer: Bool

    /// A server context. Throws when a file is missing or unreadable, the key does not match the certificate, or
    /// an option is unusable.
    public init(server configuration: TLSConfiguration) throws(TLSError) {
        handle = try Self.make(role: CSIP_TLS_ROLE_SERVER, configuration)
        self.configuration = configuration
        isServer = true
    }

    /// A client context. By default it verifies servers against the system's trust store; set `caPath` for a
    /// private CA, and `certificatePath`/`privateKeyPath` to present a client certificate.
    public init(client configuration: TLSConfiguration = TLSConfiguration(requirePeerCertificate: true)) throws(TLSError) {
        handle = try Self.make(role: CSIP_TLS_ROLE_CLIENT, configuration)
        self.configuration = configuration
        isServer = false
    }

    deinit {
        csip_tls_context_free(handle)
    }

    private static func make(role: csip_tls_role, _ configuration: TLSConfiguration) throws(TLSError) -> OpaquePointer {
        var options = csip_tls_context_options()
        options.role = Int32(role.rawValue)
        options.require_peer_certificate = configuration.requirePeerCertificate ? 1 : 0
        options.minimum_version = configuration.minimumVersion.wireValue
        options.maximum_version = configuration.maximumVersion?.wireValue ?? 0
        options.session_tickets = configuration.sessionTickets ? 1 : 0
        var error = [CChar](repeating: 0, count: Int(CSIP_TLS_ERROR_MAX))
        var context: OpaquePointer?
        // The C strings live only inside these closures, which is as long as csip_tls_context_new needs them.
        let status = withOptionalCString(configuration.certificatePath) { certificate in
            withOptionalCString(configuration.privateKeyPath) { key in
                withOptionalCString(configuration.caPath) { ca in
                    withOptionalCString(configuration.ciphers) { ciphers in
                        withOptionalCString(configuration.tls13Ciphersuites) { suites in
                            options.certificate_chain_file = certificate
                            options.private_key_file = key
                            options.ca_file = ca
                            options.cipher_list = ciphers
                            options.ciphersuites = suites
                            return csip_tls_context_new(&options, &context, &error, error.count)
                        }
                    }
                }
            }
        }
        guard status == 0, let context else { throw TLSError(text(of: error)) }
        return context
    }
}

/// What one ``TLSSession/readPlaintext(appendingTo:limit:)`` call achieved.
public enum TLSReadStatus: Sendable, Equatable {
    /// This many plaintext bytes were appended.
    case progress(Int)
    /// Nothing to decrypt yet: feed more ciphertext (and send any the session has, e.g. handshake replies).
    case wantMore
    /// The peer closed cleanly (close_notify).
    case closed
    /// The session is dead (bad record, handshake or certificate failure); send its remaining ciphertext (an
    /// alert), then close the connection.
    case failed(String)
}

/// One TLS connection's state, driven by the caller's I/O: OpenSSL never touches a socket.
///
/// The loop per connection: bytes received from the socket go to ``feed(_:)-(PacketBytes)``, then
/// ``readPlaintext(appendingTo:limit:)`` runs the handshake and decrypts; whatever ``hasCiphertext`` reports goes
/// to the socket through ``takeCiphertext(appendingTo:)`` (after every feed, read, write and shutdown).
///
/// Not Sendable: one connection, one worker thread.
public final class TLSSession {
    private let handle: OpaquePointer
    /// Plaintext written before the handshake completed; encrypted as soon as it does (in `readPlaintext`).
    private var early: [UInt8] = []

    /// Most plaintext ``write(_:)`` holds back while the handshake is still running.
    public static let maximumEarlyPlaintext = 1 << 20

    /// Starts a session. `serverName` (client only) is sent as SNI and, when the context verifies the server, is
    /// the name or IP address its certificate must carry. A client's first handshake message is ready at once:
    /// send ``takeCiphertext(appendingTo:)``'s bytes as soon as the connection is up.
    public init(context: TLSContext, serverName: String? = nil) throws(TLSError) {
        var error = [CChar](repeating: 0, count: Int(CSIP_TLS_ERROR_MAX))
        var session: OpaquePointer?
        let status = withOptionalCString(serverName) { name in
            csip_tls_session_new(context.handle, name, &session, &error, error.count)
        }
        guard status == 0, let session else { throw TLSError(text(of: error)) }
        handle = session
    }

    deinit {
        csip_tls_session_free(handle)
    }

    /// Hands over ciphertext received from the socket (copied). Returns false when the session cannot take it
    /// (it failed before, or memory ran out); the next read reports why.
    @discardableResult
    public func feed(_ bytes: PacketBytes) -> Bool {
        bytes.withUnsafeBytes { raw in
            csip_tls_feed(handle, raw.baseAddress?.assumingMemoryBound(to: UInt8.self), raw.count) == raw.count
        }
    }

    /// Hands over ciphertext received from the socket (copied).
    @discardableResult
    public func feed(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.withUnsafeBufferPointer { csip_tls_feed(handle, $0.baseAddress, $0.count) == $0.count }
    }

    /// Advances the handshake and appends decrypted plaintext to `buffer`, at most `limit` bytes (> 0) per call.
    /// `.progress` may leave more ready: call again until `.wantMore`. When data and the peer's close arrive
    /// together, the data comes first and `.closed` on the next call; `.closed` and `.failed` then stay.
    public func readPlaintext(appendingTo buffer: inout [UInt8], limit: Int) -> TLSReadStatus {
        precondition(limit > 0, "readPlaintext needs room for at least one byte")
        return withRecordBuffer { scratch in
            var total = 0
            // Bounded: every turn either appends bytes (at most `limit` in all) or ends the loop.
            while total < limit {
                let result = csip_tls_read(handle, scratch.baseAddress, min(limit - total, scratch.count))
                if result > 0 { buffer.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[0..<Int(result)])) }
                if let failure = flushEarlyPlaintext() { return total > 0 ? .progress(total) : failure }
                if result > 0 {
                    total += Int(result)
                    continue
                }
                if total > 0 { return .progress(total) }
                switch result {
                case 0: return .wantMore
                case -1: return .closed
                default: return .failed(lastError)
                }
            }
            return .progress(total)
        }
    }

    /// Encrypts `plaintext` into the session's ciphertext (send it with ``takeCiphertext(appendingTo:)``). Before
    /// the handshake completes the bytes are held (up to ``maximumEarlyPlaintext``) and encrypted as soon as it
    /// does. Returns false when the session failed or was shut down, or too much is held back.
    @discardableResult
    public func write(_ plaintext: ArraySlice<UInt8>) -> Bool {
        guard isHandshakeComplete else {
            guard early.count + plaintext.count <= Self.maximumEarlyPlaintext,
                  csip_tls_write(handle, nil, 0) == 0 else { return false }  // 0: the session has not failed
            early += plaintext
            return true
        }
        if flushEarlyPlaintext() != nil { return false }
        let written = plaintext.withUnsafeBufferPointer { csip_tls_write(handle, $0.baseAddress, $0.count) }
        return Int(written) == plaintext.count
    }

    /// Moves every ciphertext byte waiting to go to the socket onto the end of `out`.
    public func takeCiphertext(appendingTo out: inout [UInt8]) {
        withRecordBuffer { scratch in
            // Bounded: each turn takes up to a scratch buffer of what is pending; nothing adds more meanwhile.
            for _ in 0...(csip_tls_pending_output(handle) / scratch.count) {
                let taken = csip_tls_take_output(handle, scratch.baseAddress, scratch.count)
                if taken <= 0 { return }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[0..<Int(taken)]))
            }
        }
    }

    /// True when ciphertext (handshake, data, alerts) waits to be sent.
    public var hasCiphertext: Bool { csip_tls_pending_output(handle) > 0 }

    public var isHandshakeComplete: Bool { csip_tls_handshake_done(handle) == 1 }

    /// The subject of the peer's certificate (RFC 2253, "CN=alice,O=Example") once it has been verified against
    /// the context's CA; nil when the peer sent none or verification is off.
    public var peerSubject: String? {
        var subject = [CChar](repeating: 0, count: 1_024)
        let length = csip_tls_peer_subject(handle, &subject, subject.count)
        return length > 0 ? text(of: subject) : nil
    }

    /// "TLSv1.3" or "TLSv1.2" once the handshake is complete, "none" before.
    public var protocolVersion: String {
        switch csip_tls_protocol_version(handle) {
        case Int32(CSIP_TLS_VERSION_1_3): "TLSv1.3"
        case Int32(CSIP_TLS_VERSION_1_2): "TLSv1.2"
        case 0: "none"
        case let other: "0x" + String(other, radix: 16)
        }
    }

    /// The reason of the last failure, "" when none.
    public var lastError: String {
        var error = [CChar](repeating: 0, count: Int(CSIP_TLS_ERROR_MAX))
        csip_tls_last_error(handle, &error, error.count)
        return text(of: error)
    }

    /// Queues close_notify (send it, then close the socket). Returns false when the session cannot close cleanly
    /// (handshake incomplete, failed): just close the connection.
    @discardableResult
    public func shutdown() -> Bool {
        csip_tls_shutdown(handle) == 0
    }

    /// Encrypts what ``write(_:)`` held back, once the handshake is done. Nil, or the failure.
    private func flushEarlyPlaintext() -> TLSReadStatus? {
        guard !early.isEmpty, isHandshakeComplete else { return nil }
        let written = early.withUnsafeBufferPointer { csip_tls_write(handle, $0.baseAddress, $0.count) }
        guard Int(written) == early.count else { return .failed(lastError) }
        early = []
        return nil
    }
}

@available(*, unavailable, message: "a TLS session belongs to one connection on one thread")
extension TLSSession: Sendable {}

/// Runs `body` with a temporary buffer the size of the largest TLS record's plaintext (16 KiB), on the stack when
/// there is room: no zero-filling and no per-session buffer (an edge holds many idle sessions). The buffer must
/// not escape `body`.
private func withRecordBuffer<Result>(_ body: (UnsafeMutableBufferPointer<UInt8>) -> Result) -> Result {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16_384, body)
}

/// Runs `body` with `string` as a C string, or with nil.
private func withOptionalCString<Result>(_ string: String?, _ body: (UnsafePointer<CChar>?) -> Result) -> Result {
    guard let string else { return body(nil) }
    return string.withCString { body($0) }
}

/// The NUL-terminated text in a C buffer, decoded as UTF-8.
private func text(of buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension TLSVersion {
    /// The version as on the wire (0x0303, 0x0304), which is what the C layer takes.
    var wireValue: Int32 {
        switch self {
        case .tls12: Int32(CSIP_TLS_VERSION_1_2)
        case .tls13: Int32(CSIP_TLS_VERSION_1_3)
        }
    }
}
