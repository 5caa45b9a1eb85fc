/// The little HTTP/1.x the admin server speaks, as pure functions over bytes (tested without sockets): find the
/// end of a request head, read its request line, build a response.
public enum AdminHTTP {
    /// Where a client's request head ends in the bytes received so far.
    public enum HeadScan: Equatable {
        case incomplete
        /// The head is the first `length` bytes, through the empty line.
        case complete(length: Int)
        /// `maxBytes` arrived without an empty line: 431.
        case tooLarge
    }

    /// Looks for the empty line that ends a head: CRLF CRLF, or bare LF line ends (RFC 9112 §2.2 lets a server
    /// accept them; `printf ... | nc` sends them). Only the first `maxBytes` count.
    public static func scanHead(_ received: [UInt8], maxBytes: Int) -> HeadScan {
        let end = min(received.count, maxBytes)
        var index = 0
        while index < end {
            if received[index] == lineFeed {
                if index + 1 < end, received[index + 1] == lineFeed { return .complete(length: index + 2) }
                if index + 2 < end, received[index + 1] == carriageReturn, received[index + 2] == lineFeed {
                    return .complete(length: index + 3)
                }
            }
            index += 1
        }
        return received.count >= maxBytes ? .tooLarge : .incomplete
    }

    /// A request line, `method SP target SP HTTP/1.x`.
    public struct RequestLine: Equatable {
        public var method: String
        /// The target without its query or fragment.
        public var path: String
    }

    /// The request line at the start of `head`, or nil when it is malformed or not HTTP/1.x (400). Empty lines
    /// before it are skipped, as RFC 9112 §2.2 asks of servers.
    public static func requestLine(_ head: [UInt8]) -> RequestLine? {
        let start = head.firstIndex { $0 != carriageReturn && $0 != lineFeed } ?? head.endIndex
        let line = head[start...].prefix { $0 != carriageReturn && $0 != lineFeed }
        let parts = line.split(separator: space, omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty,
              parts[0].allSatisfy(isTokenCharacter), parts[1].allSatisfy({ (0x21...0x7E).contains($0) }),
              isHTTP1Version(parts[2])
        else { return nil }
        let target = parts[1].prefix { $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }
        return RequestLine(method: String(decoding: parts[0], as: UTF8.self), path: String(decoding: target, as: UTF8.self))
    }

    /// A whole response, `Connection: close` (one request per connection). `includeBody` false answers HEAD: the
    /// same status and headers, Content-Length included, and no body.
    static func response(_ status: Int, _ body: String, contentType: String = "text/plain; charset=utf-8",
                         headers: [(String, String)] = [], includeBody: Bool = true) -> [UInt8] {
        let bytes = Array(body.utf8)
        var head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(bytes.count)\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (includeBody ? bytes : [])
    }

    static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Error"
        }
    }

    private static let carriageReturn = UInt8(ascii: "\r")
    private static let lineFeed = UInt8(ascii: "\n")
    private static let space = UInt8(ascii: " ")

    /// RFC 9110 tchar: the characters of a method name.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }

    /// `HTTP/1.` and one digit: HTTP/1.0 and HTTP/1.1 (and a future 1.x), nothing else.
    private static func isHTTP1Version(_ version: ArraySlice<UInt8>) -> Bool {
        version.count == 8 && version.starts(with: "HTTP/1.".utf8)
            && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(version.last!)
    }
}
