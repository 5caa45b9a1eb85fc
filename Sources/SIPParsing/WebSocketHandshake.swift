import SIPBytes

/// What a WebSocket handshake must satisfy to open a SIP connection (RFC 6455 §4, RFC 7118 §4).
public struct WebSocketHandshakePolicy: Sendable, Equatable {
    /// Request paths served (the query is ignored). Default: `/`.
    public var paths: [String] = ["/"]
    /// Origins let in: exact (`https://phone.example.com`) or by domain (`*.example.com`, any scheme and port).
    /// Empty: any (and none).
    public var allowedOrigins: [String] = []
    /// The request head's limit; beyond it the connection is refused (431) and cut. Default: 8 KiB.
    public var maxHeaderBytes = 8_192

    public init() {}
}

/// The server side of the opening handshake, over the bytes received so far: not enough yet, accepted (the 101 to
/// send, and how many bytes the request took: frames may follow in the same read), or refused with the status the
/// RFC names and a response that echoes nothing from the request.
public enum WebSocketHandshake {
    public enum Outcome: Equatable, Sendable {
        case needMore
        case accept(response: [UInt8], consumed: Int, path: String, origin: String?)
        case refuse(status: Int, response: [UInt8])
    }

    /// RFC 6455 §1.3.
    static let acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public static func read(_ bytes: [UInt8], policy: WebSocketHandshakePolicy) -> Outcome {
        guard let headEnd = endOfHead(bytes, limit: policy.maxHeaderBytes) else {
            return bytes.count > policy.maxHeaderBytes ? refuse(431, "Request Header Fields Too Large") : .needMore
        }
        guard let head = String(validating: bytes[0..<headEnd], as: UTF8.self) else { return refuse(400, "Bad Request") }
        var lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false)
        guard requestLine.count == 3, requestLine[0] == "GET", requestLine[2] == "HTTP/1.1",
              requestLine[1].hasPrefix("/") else { return refuse(400, "Bad Request") }
        var headers: [String: [String]] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":"), colon != line.startIndex,
                  !line[..<colon].contains(where: { $0 == " " || $0 == "\t" }) else { return refuse(400, "Bad Request") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingWhitespace()
            headers[name, default: []].append(value)
        }
        func tokens(_ name: String) -> [String] {
            (headers[name] ?? []).flatMap { $0.split(separator: ",") }.map { $0.trimmingWhitespace().lowercased() }
        }
        guard headers["host"]?.count == 1,
              tokens("upgrade").contains("websocket"), tokens("connection").contains("upgrade") else {
            return refuse(400, "Bad Request")
        }
        guard headers["sec-websocket-version"] == ["13"] else {
            return refuse(426, "Upgrade Required", extra: "Sec-WebSocket-Version: 13\r\n")
        }
        guard let keys = headers["sec-websocket-key"], keys.count == 1, isWebSocketKey(keys[0]) else {
            return refuse(400, "Bad Request")
        }
        let target = String(requestLine[1])
        let path = String(target.prefix { $0 != "?" })
        guard policy.paths.contains(path) else { return refuse(404, "Not Found") }
        let origin = headers["origin"]?.first
        if !policy.allowedOrigins.isEmpty {
            guard let origin, isAllowed(origin: origin, by: policy.allowedOrigins) else { return refuse(403, "Forbidden") }
        }
        // RFC 7118 §4: the client offers "sip"; a connection without it is not a SIP one.
        guard tokens("sec-websocket-protocol").contains("sip") else { return refuse(400, "Bad Request") }
        let accept = base64(SHA1.digest(Array((keys[0] + acceptGUID).utf8)))
        let response = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Accept: \(accept)\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
        return .accept(response: Array(response.utf8), consumed: headEnd + 4, path: path, origin: origin)
    }

    /// The offset of the blank line's CRLF CRLF, within the first `limit` bytes.
    static func endOfHead(_ bytes: [UInt8], limit: Int) -> Int? {
        let end = min(bytes.count, limit)
        guard end >= 4 else { return nil }
        for index in 0...(end - 4)
        where bytes[index] == 0x0D && bytes[index + 1] == 0x0A && bytes[index + 2] == 0x0D && bytes[index + 3] == 0x0A {
            return index
        }
        return nil
    }

    /// 16 random bytes in base64: 22 characters of the alphabet and `==` (§4.1).
    static func isWebSocketKey(_ key: String) -> Bool {
        let bytes = Array(key.utf8)
        guard bytes.count == 24, bytes[22] == UInt8(ascii: "="), bytes[23] == UInt8(ascii: "=") else { return false }
        return bytes[0..<22].allSatisfy { ASCII.isAlphanumeric($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "/") }
    }

    /// An Origin (`scheme://host[:port]`, RFC 6454) against the allow-list, without case.
    static func isAllowed(origin: String, by allowed: [String]) -> Bool {
        let lowered = origin.lowercased()
        let afterScheme = lowered.split(separator: "://").last ?? ""
        let host = String(afterScheme.prefix { $0 != ":" && $0 != "/" })
        return allowed.contains { rule in
            let rule = rule.lowercased()
            if rule.hasPrefix("*.") { return host.hasSuffix(String(rule.dropFirst(1))) && host.count > rule.count - 1 }
            return rule == lowered
        }
    }

    static func refuse(_ status: Int, _ reason: String, extra: String = "") -> Outcome {
        .refuse(status: status, response: Array(
            "HTTP/1.1 \(status) \(reason)\r\n\(extra)Connection: close\r\nContent-Length: 0\r\n\r\n".utf8))
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            let count = min(3, bytes.count - index)
            var value: UInt32 = 0
            for offset in 0..<count { value |= UInt32(bytes[index + offset]) << UInt32(16 - 8 * offset) }
            for position in 0..<4 {
                if position <= count {
                    let sextet = Int((value >> UInt32(18 - 6 * position)) & 0x3F)
                    out.append(alphabet[sextet])
                } else {
                    out.append(UInt8(ascii: "="))
                }
            }
            index += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return String(text)
    }
}
