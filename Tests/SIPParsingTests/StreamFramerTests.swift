import SIPBytes
import SIPParsing
import Testing

/// NIO's ByteToMessageDecoderVerifier idea: the same stream, fed whole, byte by byte and in random chunks, must
/// frame into the same messages.
@Suite struct StreamFramerTests {
    static let invite = "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example;branch=z9hG4bK1\r\n"
        + "From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        + "Content-Type: application/sdp\r\nContent-Length: 13\r\n\r\nv=0\r\ns=-\r\nt=0"
    static let options = "OPTIONS sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/TCP h.example;branch=z9hG4bK2\r\n"
        + "f: <sip:a@example.com>;tag=1\r\nt: <sip:bob@example.com>\r\ni: c2\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n"
    static let response = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h.example;branch=z9hG4bK2\r\nFrom: <sip:a@example.com>;tag=1\r\n"
        + "To: <sip:bob@example.com>;tag=9\r\nCall-ID: c2\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n"

    enum Event: Equatable {
        case message(String)
        case ping
        case invalid(SIPParseError.Code)
    }

    /// Feeds `stream` in the given chunk sizes through a growing buffer, as a connection would.
    func frame(_ stream: [UInt8], chunks: [Int]) throws -> [Event] {
        let scanner = try MessageScanner()
        var buffer: [UInt8] = []
        var events: [Event] = []
        var offset = 0
        var chunkIndex = 0
        while offset < stream.count {
            let size = min(chunks[chunkIndex % chunks.count], stream.count - offset)
            buffer += stream[offset..<offset + size]
            offset += size
            chunkIndex += 1
            loop: while true {
                let frame = buffer.withPacketBytes { StreamFramer.nextFrame(in: $0, scanner: scanner) }
                switch frame {
                case .message(let span):
                    events.append(.message(String(decoding: buffer[span.start..<span.end], as: UTF8.self)))
                    buffer.removeFirst(span.end)
                case .ping(let consumed):
                    events.append(.ping)
                    buffer.removeFirst(consumed)
                case .padding(let consumed):
                    buffer.removeFirst(consumed)
                case .needMore:
                    break loop
                case .invalid(let error):
                    events.append(.invalid(error.code))
                    return events
                }
            }
        }
        return events
    }

    @Test func sameFramesWholeByteByByteAndInRandomChunks() throws {
        let stream = Array((Self.invite + "\r\n\r\n" + Self.options + Self.response).utf8)
        let expected: [Event] = [.message(Self.invite), .ping, .message(Self.options), .message(Self.response)]
        #expect(try frame(stream, chunks: [stream.count]) == expected)
        #expect(try frame(stream, chunks: [1]) == expected)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let chunks = (0..<8).map { _ in Int.random(in: 1...90, using: &generator) }
            #expect(try frame(stream, chunks: chunks) == expected, "chunks \(chunks)")
        }
    }

    @Test func everyFramedMessageParsesAsAStreamMessage() throws {
        let parser = try SIPParser()
        for text in [Self.invite, Self.options, Self.response] {
            let bytes = Array(text.utf8)
            let ok = bytes.withPacketBytes { (try? parser.parse($0, framing: .stream)) != nil }
            #expect(ok)
        }
    }

    @Test func aBodyArrivingLaterWaits() throws {
        let scanner = try MessageScanner()
        let partial = Array(Self.invite.utf8.dropLast(5))
        #expect(partial.withPacketBytes { StreamFramer.nextFrame(in: $0, scanner: scanner) } == .needMore)
    }

    @Test func streamsThatCannotBeFramedAreRefused() throws {
        let noLength = Self.options.replacingOccurrences(of: "l: 0\r\n", with: "")
        #expect(try frame(Array(noLength.utf8), chunks: [7]) == [.invalid(.missingContentLength)])
        let twoLengths = Self.options.replacingOccurrences(of: "l: 0\r\n", with: "l: 0\r\nContent-Length: 5\r\n")
        #expect(try frame(Array(twoLengths.utf8), chunks: [1000]) == [.invalid(.conflictingContentLength)])
        let huge = Self.options.replacingOccurrences(of: "l: 0\r\n", with: "l: 999999\r\n")
        #expect(try frame(Array(huge.utf8), chunks: [1000]) == [.invalid(.messageTooLarge)])
        let negative = Self.options.replacingOccurrences(of: "l: 0\r\n", with: "l: -1\r\n")
        #expect(try frame(Array(negative.utf8), chunks: [1000]) == [.invalid(.invalidContentLength)])
        // Headers that never end are cut at the size limit instead of buffering without bound.
        let padLine = "X-Pad: " + String(repeating: "0123456789", count: 100) + "\r\n"
        let endless = Array(("OPTIONS sip:a SIP/2.0\r\n" + String(repeating: padLine, count: 80)).utf8)
        #expect(try frame(endless, chunks: [4096]).last == .invalid(.messageTooLarge))
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        var result = ""
        var rest = Substring(self)
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound] + replacement
            rest = rest[range.upperBound...]
        }
        return result + rest
    }
}
