public import SIPBytes
public import SIPParsing

/// What identifies one transaction in a ``TransactionMap`` (RFC 3261 §17.1.3, §17.2.3), as spans into the
/// message's bytes: building a key copies nothing. The map copies the key's bytes into its own preallocated storage
/// only when it inserts it.
///
/// A key borrows its message's bytes (``SIPMessage/bytes``), so it is valid exactly as long as the message: build
/// it, use it in the map, drop it.
///
/// Three kinds, never equal to one another:
/// - **server**, for a request whose top Via branch starts with the magic cookie `z9hG4bK` (§17.2.3): branch,
///   sent-by host and port, method. ACK takes the method INVITE, so a non-2xx ACK, which reuses the INVITE's branch,
///   finds the INVITE's transaction; a 2xx ACK has a branch of its own (§13.2.2.4) and finds nothing (a UA that
///   reuses the INVITE's branch for it does find the INVITE: the caller, which knows the final response was a 2xx,
///   forwards that ACK all the same). CANCEL is a transaction of its own; ``cancelTarget(for:)`` finds the INVITE
///   it cancels.
/// - **server, RFC 2543 fallback**, for a request without the cookie: Request-URI, From tag, To tag, Call-ID, CSeq
///   number, the whole top Via, method (ACK again as INVITE). Simplified for INVITE and ACK: neither takes the To
///   tag. §17.2.3 matches the ACK's To tag against the tag of the *response* the transaction sent, which only the
///   caller knows; without it a non-2xx ACK matches its INVITE on Request-URI, From tag, Call-ID, CSeq number and
///   top Via. A 2543 2xx ACK usually differs in its Request-URI (the Contact); when it does not, it matches too,
///   and the caller, which knows the final response and its To tag, tells the two apart.
/// - **client**, for a response from the core (§17.1.3): the top Via branch (the edge's own) and the CSeq method,
///   so the responses to a CANCEL never match the INVITE's transaction.
///
/// Comparison rules. Per §7.3.1 tokens and parameter values compare without case unless a header says otherwise,
/// and §20.42 says nothing special for the branch, so the branch and the tags compare ASCII case-insensitively.
/// So does the sent-by host (host names are case-insensitive, §19.1.4); an absent sent-by port is its transport's
/// default (5061 for TLS, 5060 otherwise), so `host` and `host:5060` are one sender. Byte for byte: the method
/// (case-sensitive, §7.1), the Call-ID (§20.8), and for the RFC 2543 fallback the Request-URI and the top Via as
/// a whole, which a retransmission and an ACK copy unchanged (the full URI equivalence of §19.1.4 is not applied).
/// Only the magic cookie itself must be exactly `z9hG4bK` (``ViaHop/hasRFC3261Branch(in:)``).
public struct TransactionKey {
    enum Kind: UInt64 {
        case server = 1
        case serverRFC2543 = 2
        case client = 3
    }

    /// The longest field a key carries: its length is stored in one byte. A longer field makes the key too long.
    static let maximumFieldLength: UInt32 = 255

    let kind: Kind
    /// The method the transaction was created by (``SIPMethod/Known`` raw value): INVITE for an ACK.
    let methodCode: UInt8
    /// Sent-by port (server) or CSeq number (RFC 2543 fallback); 0 for a client key.
    let number: UInt32
    /// Holds every field but the extension method's name.
    let bytes: PacketBytes
    /// Holds ``extensionMethod``: the same buffer, except for a client key built from a branch the edge wrote.
    let methodBytes: PacketBytes
    /// The fields, in order, unused ones empty; case-folded where ``foldsCase`` has their bit.
    let field0: ByteSpan
    let field1: ByteSpan
    let field2: ByteSpan
    let field3: ByteSpan
    let field4: ByteSpan
    let foldsCase: UInt8
    /// An extension method's name (case-sensitive); empty for a known method. Always the last field.
    let extensionMethod: ByteSpan
    /// Words (8 bytes) the key takes in the map: two header words and each field padded to whole words. Above
    /// any map's limit (`Int.max`) when a field is longer than ``maximumFieldLength``.
    let wordCount: Int

    private init(kind: Kind, method: SIPMethod, number: UInt32, bytes: PacketBytes, methodBytes: PacketBytes,
                 fields: (ByteSpan, ByteSpan, ByteSpan, ByteSpan, ByteSpan), foldsCase: UInt8) {
        self.kind = kind
        self.methodCode = method.known.rawValue
        self.number = number
        self.bytes = bytes
        self.methodBytes = methodBytes
        (field0, field1, field2, field3, field4) = fields
        self.foldsCase = foldsCase
        self.extensionMethod = method.known == .extension ? method.span : ByteSpan.empty
        // Plain arithmetic, no array: a key is built per message and must not allocate. The OR of the lengths is
        // above 255 exactly when one of them is.
        let anyLength = field0.length | field1.length | field2.length | field3.length | field4.length
            | extensionMethod.length
        let fieldWords = (field0.count + 7) >> 3 + (field1.count + 7) >> 3 + (field2.count + 7) >> 3
            + (field3.count + 7) >> 3 + (field4.count + 7) >> 3 + (extensionMethod.count + 7) >> 3
        self.wordCount = anyLength > Self.maximumFieldLength ? Int.max : 2 + fieldWords
    }

    /// The key of the server transaction `request` belongs to (an ACK: the INVITE's). Nil for a response.
    public static func server(for request: SIPMessage) -> TransactionKey? {
        guard let line = request.requestLine else { return nil }
        let method = line.method.known == .ack ? Self.invite : line.method
        return server(request, line: line, method: method)
    }

    /// The key of the INVITE server transaction that `cancel` cancels (§9.2: matched as in §17.2.3, but with the
    /// method INVITE). Nil unless `cancel` is a CANCEL request.
    public static func cancelTarget(for cancel: SIPMessage) -> TransactionKey? {
        guard let line = cancel.requestLine, line.method.known == .cancel else { return nil }
        return server(cancel, line: line, method: Self.invite)
    }

    /// The key of the client transaction `message` belongs to: its top Via branch and its method (for a response,
    /// the CSeq method). Takes a response from the core, or the edge's own outgoing request once parsed. Nil when
    /// the top Via has no branch.
    public static func client(for message: SIPMessage) -> TransactionKey? {
        guard let branch = message.topVia.branch else { return nil }
        return client(branch: branch, in: message.bytes, method: message.method, methodBytes: message.bytes)
    }

    /// The key of a client transaction the edge starts: `branch` is the branch it wrote into its Via, in `bytes`
    /// (typically its output buffer), and `method` the request's method, whose name `methodBytes` holds (read only
    /// for an extension method; pass `bytes` for a known one).
    public static func client(branch: ByteSpan, in bytes: PacketBytes, method: SIPMethod,
                              methodBytes: PacketBytes) -> TransactionKey {
        TransactionKey(kind: .client, method: method, number: 0, bytes: bytes, methodBytes: methodBytes,
                       fields: (branch, .empty, .empty, .empty, .empty), foldsCase: 0b1)
    }

    private static let invite = SIPMethod(known: .invite, span: .empty)

    private static func server(_ request: SIPMessage, line: RequestLine, method: SIPMethod) -> TransactionKey {
        let bytes = request.bytes
        let via = request.topVia
        if via.hasRFC3261Branch(in: bytes), let branch = via.branch {
            return TransactionKey(kind: .server, method: method, number: UInt32(sentByPort(via, in: bytes)),
                                  bytes: bytes, methodBytes: bytes,
                                  fields: (branch, via.host, .empty, .empty, .empty),
                                  foldsCase: 0b11)
        }
        // INVITE and ACK leave the To tag out (see the type's comment); CANCEL and the rest keep it.
        let toTag = method.known == .invite ? ByteSpan.empty : request.toTag ?? .empty
        return TransactionKey(kind: .serverRFC2543, method: method, number: request.cseq.number, bytes: bytes,
                              methodBytes: bytes,
                              fields: (line.uri.span, request.fromTag ?? .empty, toTag, request.callID, via.span),
                              foldsCase: 0b110)
    }

    /// The sent-by port, or the default of the hop's transport (RFC 3261 §18.2.1: 5061 for TLS, else 5060).
    private static func sentByPort(_ via: ViaHop, in bytes: PacketBytes) -> UInt16 {
        if let port = via.port { return port }
        return bytes.equalsIgnoringCase(via.transport, "TLS") ? 5061 : 5060
    }

    // MARK: Stored form
    //
    // The map stores a key as words: word 0 holds kind, method, word count and number; word 1 the field lengths,
    // a byte each; then each field, 8 bytes a word (little-endian, the last zero-padded), lower-cased where the
    // field ignores case. The lengths make the form unambiguous, so equal words mean equal keys. Hashing, comparing
    // and storing read the words straight from the message (a lookup hashes once and compares once), with no
    // closure or buffer in between: the per-field loops are inlined.

    var headerWord: UInt64 {
        kind.rawValue | UInt64(methodCode) << 8 | (UInt64(truncatingIfNeeded: wordCount) & 0xFF) << 16
            | UInt64(number) << 32
    }

    /// Unused fields are empty, so their bytes are 0; the extension method's length is byte 5.
    var lengthsWord: UInt64 {
        UInt64(field0.length) | UInt64(field1.length) << 8 | UInt64(field2.length) << 16
            | UInt64(field3.length) << 24 | UInt64(field4.length) << 32 | UInt64(extensionMethod.length) << 40
    }

    /// The map's tag for this key: its stored words, hashed with the map's `hash`.
    @inline(__always)
    func hash(_ hash: KeyHash) -> UInt32 {
        var state = hash.absorb(headerWord, into: hash.start)
        state = hash.absorb(lengthsWord, into: state)
        state = Self.hash(field0, in: bytes, folding: foldsCase & 0b1 != 0, hash, state)
        state = Self.hash(field1, in: bytes, folding: foldsCase & 0b10 != 0, hash, state)
        state = Self.hash(field2, in: bytes, folding: foldsCase & 0b100 != 0, hash, state)
        state = Self.hash(field3, in: bytes, folding: foldsCase & 0b1000 != 0, hash, state)
        state = Self.hash(field4, in: bytes, folding: foldsCase & 0b10000 != 0, hash, state)
        state = Self.hash(extensionMethod, in: methodBytes, folding: false, hash, state)
        return hash.finish(state)
    }

    /// True when `words[start...]` holds this key. Reads at most ``wordCount`` words, and only the first unless it
    /// matches: it holds the word count, so a stored key of another length never matches past it.
    @inline(__always)
    func isStored(in words: [UInt64], at start: Int) -> Bool {
        guard words[start] == headerWord, words[start + 1] == lengthsWord else { return false }
        var index = start + 2
        return Self.matches(field0, in: bytes, folding: foldsCase & 0b1 != 0, words, &index)
            && Self.matches(field1, in: bytes, folding: foldsCase & 0b10 != 0, words, &index)
            && Self.matches(field2, in: bytes, folding: foldsCase & 0b100 != 0, words, &index)
            && Self.matches(field3, in: bytes, folding: foldsCase & 0b1000 != 0, words, &index)
            && Self.matches(field4, in: bytes, folding: foldsCase & 0b10000 != 0, words, &index)
            && Self.matches(extensionMethod, in: methodBytes, folding: false, words, &index)
    }

    /// Writes the key's ``wordCount`` words to `words[start...]`.
    func store(in words: inout [UInt64], at start: Int) {
        words[start] = headerWord
        words[start + 1] = lengthsWord
        var index = start + 2
        Self.store(field0, in: bytes, folding: foldsCase & 0b1 != 0, &words, &index)
        Self.store(field1, in: bytes, folding: foldsCase & 0b10 != 0, &words, &index)
        Self.store(field2, in: bytes, folding: foldsCase & 0b100 != 0, &words, &index)
        Self.store(field3, in: bytes, folding: foldsCase & 0b1000 != 0, &words, &index)
        Self.store(field4, in: bytes, folding: foldsCase & 0b10000 != 0, &words, &index)
        Self.store(extensionMethod, in: methodBytes, folding: false, &words, &index)
    }

    /// Word `index` of a field of `span.count` bytes (whole words load 8 bytes at once, the last one the rest).
    @inline(__always)
    private static func word(_ index: Int, of span: ByteSpan, in bytes: PacketBytes, folding: Bool) -> UInt64 {
        let offset = span.start &+ 8 &* index
        let word = bytes.word(at: offset, length: min(8, span.end &- offset))
        return folding ? ASCII.lowercased(word: word) : word
    }

    @inline(__always)
    private static func hash(_ span: ByteSpan, in bytes: PacketBytes, folding: Bool, _ hash: KeyHash,
                             _ state: UInt64) -> UInt64 {
        var state = state
        for index in 0..<(span.count &+ 7) >> 3 {
            state = hash.absorb(word(index, of: span, in: bytes, folding: folding), into: state)
        }
        return state
    }

    @inline(__always)
    private static func matches(_ span: ByteSpan, in bytes: PacketBytes, folding: Bool, _ words: [UInt64],
                                _ next: inout Int) -> Bool {
        for index in 0..<(span.count &+ 7) >> 3 {
            guard words[next] == word(index, of: span, in: bytes, folding: folding) else { return false }
            next &+= 1
        }
        return true
    }

    @inline(__always)
    private static func store(_ span: ByteSpan, in bytes: PacketBytes, folding: Bool, _ words: inout [UInt64],
                              _ next: inout Int) {
        for index in 0..<(span.count &+ 7) >> 3 {
            words[next] = word(index, of: span, in: bytes, folding: folding)
            next &+= 1
        }
    }
}

/// The map's seeded hash of a key's stored words: per word, one folded 64×64→128-bit multiply (high half XOR low
/// half) of the state XOR the word by a secret odd number derived from the seed, then the splitmix64 finaliser.
/// Without the seed a sender can neither predict the state nor choose a word that zeroes a factor. Its 32-bit
/// result is the map's tag: the low bits pick the home slot, all 32 filter slots before a key comparison.
struct KeyHash {
    let start: UInt64
    let secret: UInt64

    init(seed: UInt64) {
        start = seed
        secret = Self.finalise(seed ^ 0xA076_1D64_78BD_642F) | 1
    }

    @inline(__always)
    func absorb(_ word: UInt64, into state: UInt64) -> UInt64 {
        let product = (state ^ word).multipliedFullWidth(by: secret)
        return product.high ^ product.low
    }

    @inline(__always)
    func finish(_ state: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: Self.finalise(state) >> 32)
    }

    @inline(__always)
    private static func finalise(_ value: UInt64) -> UInt64 {
        var mixed = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
