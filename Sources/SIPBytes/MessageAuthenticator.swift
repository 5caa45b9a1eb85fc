import CSIPTLS

/// HMAC-SHA256 under one key, truncated to the length the caller asks for: signs and checks flow tokens. Holds
/// the keyed OpenSSL context (the C side owns it; this type only passes it back), reused from message to message,
/// so signing allocates nothing. One per worker: not shared between threads.
public final class MessageAuthenticator {
    private let context: OpaquePointer

    /// `key`: at least 16 bytes of secret (a programming error otherwise: configuration checks it first).
    public init(key: [UInt8]) {
        precondition(key.count >= 16, "MAC key shorter than 16 bytes")
        var made: OpaquePointer?
        // OpenSSL unable to set up HMAC-SHA256 means the process is broken; never run without signing.
        precondition(csip_mac_new(&made, key, key.count) == 0 && made != nil, "HMAC-SHA256 setup failed")
        context = made!
    }

    deinit {
        csip_mac_free(context)
    }

    /// Writes the MAC of `data[0..<length]` into `mac` (its whole count, at most 32 bytes). False if OpenSSL
    /// failed, which callers treat as "does not verify".
    public func compute(_ data: [UInt8], length: Int, into mac: inout [UInt8]) -> Bool {
        precondition(length <= data.count && mac.count <= 32)
        return csip_mac_compute(context, data, length, &mac, mac.count) == 0
    }
}

/// SHA-1, for the one place a protocol still asks for it: the WebSocket handshake's accept value (RFC 6455 §4.2.2,
/// where it proves the server read the key, not secrecy).
public enum SHA1 {
    public static func digest(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 20)
        // OpenSSL unable to hash means the process is broken; a handshake must never go out with a wrong value.
        precondition(csip_sha1(data, data.count, &out) == 0, "SHA-1 failed")
        return out
    }
}
