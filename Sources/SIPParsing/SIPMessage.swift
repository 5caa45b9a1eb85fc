public import SIPBytes

/// The first line of a request: method, Request-URI, version.
public struct RequestLine: Equatable, Sendable {
    public var method: SIPMethod
    public var uri: SIPURI
    public var version: ByteSpan
}

/// The first line of a response: version, status code, reason phrase.
public struct StatusLine: Equatable, Sendable {
    public var version: ByteSpan
    public var statusCode: UInt16
    public var reasonPhrase: ByteSpan
}

public enum StartLine: Equatable, Sendable {
    case request(RequestLine)
    case response(StatusLine)
}

/// CSeq: a 32-bit sequence number and a method (RFC 3261 §20.16).
public struct CSeq: Equatable, Sendable {
    public var number: UInt32
    public var method: SIPMethod
}

/// One parsed SIP message: the start line, the header index and the headers a proxy needs on every message,
/// all as spans into the received bytes.
///
/// A `SIPMessage` borrows two things: the packet's bytes and its parser's reusable ``HeaderTable``. It is valid until
/// the receive buffer is recycled or the parser parses another message, whichever comes first; header accessors
/// trap if the parser has moved on (a programming error, not an input error). Keep spans, not messages.
public struct SIPMessage {
    public let bytes: PacketBytes
    let table: HeaderTable
    let generation: UInt64

    public let startLine: StartLine
    public let startLineSpan: ByteSpan
    public let headerCount: Int
    /// Which header kinds occur at least once.
    public let headerSet: HeaderSet
    /// The OR of every header line's scanner flags.
    public let headerFlags: HeaderLineFlags
    /// The body: Content-Length bytes, or the rest of the datagram when Content-Length is absent.
    public let body: ByteSpan
    /// Offset just past this message; a datagram may carry ignored bytes after it (RFC 4475 dblreq).
    public let messageEnd: Int

    public let callID: ByteSpan
    public let cseq: CSeq
    /// From and To are read lazily (Kamailio's parse-on-demand): the forwarding path needs only their tags, found
    /// by one quick scan; ``fromAddress()``/``toAddress()`` and ``SIPParser/validateAllHeaders(_:)`` parse them fully.
    public let fromValue: ByteSpan
    public let toValue: ByteSpan
    public let fromTag: ByteSpan?
    public let toTag: ByteSpan?
    /// The first Via hop: the one a response is routed by.
    public let topVia: ViaHop
    /// Index of the header line holding ``topVia``.
    public let topViaHeaderIndex: Int
    /// Number of Via hops across all Via lines.
    public let viaHopCount: Int
    /// Max-Forwards, or nil when absent.
    public let maxForwards: UInt8?
    /// Content-Length, or nil when absent.
    public let contentLength: UInt32?

    public var isRequest: Bool {
        if case .request = startLine { return true }
        return false
    }

    public var requestLine: RequestLine? {
        if case .request(let line) = startLine { return line }
        return nil
    }

    public var statusLine: StatusLine? {
        if case .response(let line) = startLine { return line }
        return nil
    }

    /// The request method, or for a response the CSeq method.
    public var method: SIPMethod {
        requestLine?.method ?? cseq.method
    }

    /// The header index this message reads (its parser's reusable table).
    public var headerTable: HeaderTable {
        precondition(table.generation == generation, "SIPMessage used after its parser parsed another message")
        return table
    }

    /// Header line `index` (0-based, in message order).
    public func header(at index: Int) -> HeaderLine {
        precondition(table.generation == generation, "SIPMessage used after its parser parsed another message")
        return table[index]
    }

    /// Kind of header line `index`.
    public func kind(at index: Int) -> HeaderKind {
        precondition(table.generation == generation, "SIPMessage used after its parser parsed another message")
        return HeaderKind(code: table.kindCode(at: index))
    }

    /// Index of the first header line of `kind`, or nil.
    public func firstIndex(of kind: HeaderKind) -> Int? {
        guard headerSet.contains(kind) else { return nil }
        return nextIndex(of: kind, after: -1)
    }

    /// Index of the next header line of `kind` after `index`, or nil.
    public func nextIndex(of kind: HeaderKind, after index: Int) -> Int? {
        precondition(table.generation == generation, "SIPMessage used after its parser parsed another message")
        return table.nextIndex(ofKindCode: kind.code, after: max(index, -1), limit: headerCount)
    }

    /// The first header line of `kind`, or nil.
    public func firstHeader(_ kind: HeaderKind) -> HeaderLine? {
        firstIndex(of: kind).map { header(at: $0) }
    }

    /// Calls `body` with each comma-separated element of every `kind` header line, in order.
    public func forEachElement(
        of kind: HeaderKind, _ body: (ByteSpan) throws(SIPParseError) -> Void
    ) throws(SIPParseError) {
        try visitElements(of: kind) { element throws(SIPParseError) in
            try body(element)
            return true
        }
    }

    /// The comma-separated element at `position` (0 = the first) counted over every line of `kind` in order; nil when
    /// there are fewer. Reads no further than that element.
    public func element(at position: Int, of kind: HeaderKind) throws(SIPParseError) -> ByteSpan? {
        var remaining = position
        var found: ByteSpan?
        try visitElements(of: kind) { element in
            guard remaining == 0 else {
                remaining -= 1
                return true
            }
            found = element
            return false
        }
        return found
    }

    /// The Via hop after the top one (where a proxy sends a response), or nil when there is none. In its common form
    /// (``ViaHop/parseCommonForm(_:_:)``) it is read straight from where the top hop ends, without splitting the
    /// Vias into elements first; any other shape goes through the element split and the full grammar, so the hop
    /// or the error is the same either way.
    public func secondViaHop() throws(SIPParseError) -> ViaHop? {
        let topLine = header(at: topViaHeaderIndex).value
        let topEnd = topVia.span.end
        var rest: ByteSpan?
        if topEnd < topLine.end {
            if bytes[topEnd] == UInt8(ascii: ",") { rest = ByteSpan(from: topEnd + 1, to: topLine.end) }
        } else if let next = nextIndex(of: .via, after: topViaHeaderIndex) {
            rest = header(at: next).value
        }
        if let rest {
            var cursor = ValueCursor(bytes, rest)
            cursor.skipWhitespace()
            if let (hop, _) = ViaHop.parseCommonForm(bytes, ByteSpan(from: cursor.position, to: rest.end)) { return hop }
        }
        guard let element = try element(at: 1, of: .via) else { return nil }
        return try ViaHop.parse(bytes, element)
    }

    /// Each comma-separated element of every `kind` header line, in order, until `body` returns false.
    private func visitElements(
        of kind: HeaderKind, _ body: (ByteSpan) throws(SIPParseError) -> Bool
    ) throws(SIPParseError) {
        var index = firstIndex(of: kind)
        while let current = index {
            var elements = CommaSeparatedValues(bytes, header(at: current).value)
            while let element = try elements.next() {
                if try !body(element) { return }
            }
            index = nextIndex(of: kind, after: current)
        }
    }

    /// Calls `body` with each comma-separated element of header line `index`, in order, until it returns false.
    public func forEachElement(inLine index: Int, _ body: (ByteSpan) -> Bool) throws(SIPParseError) {
        var elements = CommaSeparatedValues(bytes, header(at: index).value)
        while let element = try elements.next() {
            if !body(element) { return }
        }
    }

    /// The value of the first header named `name` (any case), matching unknown headers too. Not for the hot path.
    public func firstHeader(named name: String) -> HeaderLine? {
        let wanted = Array(name.utf8)
        for i in 0..<headerCount {
            let line = header(at: i)
            if bytes.copyBytes(line.name).map(ASCII.lowercased) == wanted.map(ASCII.lowercased) { return line }
        }
        return nil
    }

    /// The From header fully parsed.
    public func fromAddress() throws(SIPParseError) -> NameAddress {
        try NameAddress.parse(bytes, fromValue)
    }

    /// The To header fully parsed.
    public func toAddress() throws(SIPParseError) -> NameAddress {
        try NameAddress.parse(bytes, toValue)
    }

    /// A copy of `span` as a String, for logs, diagnostics and tests.
    public func string(_ span: ByteSpan) -> String { bytes.string(span) }
}

extension SIPMessage {
    /// Calls `body` with each option tag (RFC 3261 §25.1: option-tag = token) of every `kind` line (Require,
    /// Proxy-Require, Supported). Returns false, after calling `body` for the tags before it, when an element is
    /// not a token: the caller refuses the message rather than echo those bytes anywhere.
    public func forEachOptionTag(of kind: HeaderKind, _ body: (ByteSpan) -> Void) -> Bool {
        var valid = true
        let bytes = self.bytes
        do {
            try forEachElement(of: kind) { element throws(SIPParseError) in
                guard valid else { return }
                guard !element.isEmpty, CharacterClass.token.containsAll(of: element, in: bytes) else {
                    valid = false
                    return
                }
                body(element)
            }
        } catch {
            return false
        }
        return valid
    }
}
