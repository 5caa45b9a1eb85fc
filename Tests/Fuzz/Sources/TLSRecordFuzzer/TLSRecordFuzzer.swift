// libFuzzer harness for the TLS record path a client connection's bytes take (TLSSession over OpenSSL memory
// BIOs, as StreamTransport drives it). The first input byte picks where the rest goes:
//   0. a fresh server session's first flight: what a client sends before any handshake (ClientHello parsing);
//   1. after a completed handshake (TLS 1.3 with a real client session, in memory), straight into the server as
//      records: nobody holds the keys, so no plaintext may come out, whatever the bytes;
//   2. after a completed handshake, as plaintext the client encrypts, cut into segments where the input says
//      (its bytes 1-2 give the cut): the server must read exactly that plaintext back;
//   3. like 2, with one byte of the ciphertext flipped (position from the input): the server must refuse it and
//      deliver no plaintext of the altered record.
// The server's certificate and key come from SIPEDGE_FUZZ_TLS_DIR (perf/fuzz.sh makes them with openssl).
// A disagreement is a fatalError, which libFuzzer reports as a crash with the input saved as an artifact.

import SIPSettings
import SIPUring

#if canImport(Glibc)
import Glibc
#endif

func disagree(_ what: String, _ detail: String) -> Never {
    fatalError("TLSRecordFuzzer: \(what):\n  \(detail)")
}

// Created once: a fuzz harness is single-threaded.
nonisolated(unsafe) let contexts: (server: TLSContext, client: TLSContext) = {
    guard let directory = getenv("SIPEDGE_FUZZ_TLS_DIR").map({ String(cString: $0) }) else {
        fatalError("TLSRecordFuzzer: set SIPEDGE_FUZZ_TLS_DIR to a directory with server.pem and server.key")
    }
    do {
        let server = try TLSContext(server: TLSConfiguration(certificatePath: directory + "/server.pem",
                                                             privateKeyPath: directory + "/server.key"))
        let client = try TLSContext(client: TLSConfiguration(requirePeerCertificate: false))
        return (server, client)
    } catch {
        fatalError("TLSRecordFuzzer: \(error)")
    }
}()

/// Moves ciphertext between the two sessions until neither has any to send (a handshake in memory).
func pump(_ client: TLSSession, _ server: TLSSession) {
    var scratch: [UInt8] = []
    for _ in 0..<50 {
        var toServer: [UInt8] = []
        client.takeCiphertext(appendingTo: &toServer)
        if !toServer.isEmpty { _ = server.feed(toServer[...]) }
        _ = server.readPlaintext(appendingTo: &scratch, limit: 1 << 16)
        var toClient: [UInt8] = []
        server.takeCiphertext(appendingTo: &toClient)
        if !toClient.isEmpty { _ = client.feed(toClient[...]) }
        _ = client.readPlaintext(appendingTo: &scratch, limit: 1 << 16)
        if toServer.isEmpty && toClient.isEmpty && !client.hasCiphertext && !server.hasCiphertext { return }
    }
}

/// A server session with its handshake done against a client session.
func connectedPair() -> (client: TLSSession, server: TLSSession) {
    guard let client = try? TLSSession(context: contexts.client, serverName: nil),
          let server = try? TLSSession(context: contexts.server, serverName: nil) else {
        disagree("session", "could not create a session")
    }
    pump(client, server)
    guard client.isHandshakeComplete, server.isHandshakeComplete else {
        disagree("handshake", "an in-memory handshake did not complete: \(server.lastError) / \(client.lastError)")
    }
    return (client, server)
}

/// Everything the server yields from `bytes` fed in `segments`, and whether it failed.
func serverReads(_ server: TLSSession, _ bytes: [UInt8], cutAt cut: Int) -> (plaintext: [UInt8], failed: Bool) {
    var plaintext: [UInt8] = []
    var failed = false
    let cut = min(cut, bytes.count)
    for segment in [bytes[..<cut], bytes[cut...]] where !segment.isEmpty {
        if !server.feed(segment) { return (plaintext, true) }
        reading: while true {
            switch server.readPlaintext(appendingTo: &plaintext, limit: 1 << 20) {
            case .progress: continue
            case .wantMore, .closed: break reading
            case .failed:
                failed = true
                break reading
            }
        }
        if failed { break }
    }
    return (plaintext, failed)
}

func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 1 else { return 0 }
    let mode = data[0] % 4
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch mode {
    case 0:
        guard let server = try? TLSSession(context: contexts.server, serverName: nil) else { return 0 }
        let (plaintext, _) = serverReads(server, input, cutAt: input.count / 2)
        if !plaintext.isEmpty { disagree("first flight", "plaintext before any handshake: \(plaintext.count) bytes") }
        var out: [UInt8] = []
        server.takeCiphertext(appendingTo: &out)
    case 1:
        let (_, server) = connectedPair()
        let (plaintext, _) = serverReads(server, input, cutAt: input.count / 3)
        if !plaintext.isEmpty {
            disagree("forged records", "\(input.count) bytes nobody encrypted gave \(plaintext.count) bytes of plaintext")
        }
    default:
        guard input.count >= 2 else { return 0 }
        let position = Int(input[0]) << 8 | Int(input[1])
        let message = Array(input[2...])
        guard !message.isEmpty else { return 0 }
        let (client, server) = connectedPair()
        guard client.write(message[...]) else { disagree("client write", client.lastError) }
        var records: [UInt8] = []
        client.takeCiphertext(appendingTo: &records)
        if mode == 2 {
            let (plaintext, failed) = serverReads(server, records, cutAt: position % (records.count + 1))
            if failed || plaintext != message {
                disagree("round trip", "\(message.count) bytes in, \(plaintext.count) out, failed: \(failed): \(server.lastError)")
            }
        } else {
            let flipped = position % records.count
            records[flipped] ^= 0x01
            let (plaintext, failed) = serverReads(server, records, cutAt: records.count / 2)
            // A flip in a record's header may only shorten or lengthen what is awaited; in the payload or tag the
            // record must fail. Either way the altered record's plaintext never comes out whole.
            if plaintext == message {
                disagree("tampering", "a flipped byte at \(flipped) of \(records.count) went unnoticed (failed: \(failed))")
            }
        }
    }
    return 0
}
