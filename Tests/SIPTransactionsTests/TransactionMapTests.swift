import SIPBytes
import SIPParsing
import SIPTransactions
import SIPTestSupport
import Testing

/// A request as a client sends it; each test changes the fields it is about.
private struct Request {
    var method = "INVITE"
    var uri = "sip:bob@biloxi.example.com"
    var via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport"
    var fromTag: String? = "1928301774"
    var toTag: String?
    var callID = "a84b4c76e66710@pc33.atlanta.example.com"
    var cseq: UInt32 = 314_159

    var bytes: [UInt8] {
        let lines = [
            "\(method) \(uri) SIP/2.0",
            "Via: \(via)",
            "Max-Forwards: 70",
            "From: Alice <sip:alice@atlanta.example.com>" + (fromTag.map { ";tag=\($0)" } ?? ""),
            "To: Bob <sip:bob@biloxi.example.com>" + (toTag.map { ";tag=\($0)" } ?? ""),
            "Call-ID: \(callID)",
            "CSeq: \(cseq) \(method)",
            "Content-Length: 0",
        ]
        return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
    }

    /// The ACK a client transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3): the INVITE's
    /// Request-URI, top Via, From, Call-ID and CSeq number, the response's To tag.
    var nonSuccessACK: Request {
        var ack = self
        ack.method = "ACK"
        ack.toTag = "8321234356"
        return ack
    }

    /// The CANCEL for this request (§9.1): same Request-URI, top Via, From, To, Call-ID and CSeq number.
    var cancel: Request {
        var cancel = self
        cancel.method = "CANCEL"
        return cancel
    }
}

/// A response arriving from the core: the edge's own Via on top.
private func response(status: String = "180 Ringing", branch: String = "z9hG4bKedge0123456789abcdef",
                      cseqMethod: String = "INVITE") -> [UInt8] {
    let lines = [
        "SIP/2.0 \(status)",
        "Via: SIP/2.0/UDP 203.0.113.1:5060;rport=5060;branch=\(branch)",
        "Via: SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport=40000;received=192.0.2.10",
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774",
        "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
        "CSeq: 314159 \(cseqMethod)",
        "Content-Length: 0",
    ]
    return Array((lines.joined(separator: "\r\n") + "\r\n\r\n").utf8)
}

/// The edge's request towards the core, which starts a client transaction.
private func outgoing(method: String = "INVITE", branch: String = "z9hG4bKedge0123456789abcdef") -> [UInt8] {
    var request = Request()
    request.method = method
    request.via = "SIP/2.0/UDP 203.0.113.1:5060;rport;branch=\(branch)"
    return request.bytes
}

/// Parses `bytes` and hands `body` the message: it, and every key made from it, is valid only inside.
private func withMessage<Result>(_ bytes: [UInt8], _ body: (SIPMessage) throws -> Result) throws -> Result {
    let parser = try SIPParser()
    return try bytes.withPacketBytes { packet in try body(try parser.parse(packet)) }
}

private func withServerKey<Result>(_ request: Request, _ body: (TransactionKey) throws -> Result) throws -> Result {
    try withMessage(request.bytes) { message in try body(try #require(TransactionKey.server(for: message))) }
}

private func withCancelTarget<Result>(_ request: Request, _ body: (TransactionKey) throws -> Result) throws -> Result {
    try withMessage(request.bytes) { message in try body(try #require(TransactionKey.cancelTarget(for: message))) }
}

private func withClientKey<Result>(_ bytes: [UInt8], _ body: (TransactionKey) throws -> Result) throws -> Result {
    try withMessage(bytes) { message in try body(try #require(TransactionKey.client(for: message))) }
}

private func insertServer(_ request: Request, value: UInt32, into map: inout TransactionMap) throws
    -> TransactionMap.InsertResult {
    try withServerKey(request) { map.insert($0, value: value) }
}

private func findServer(_ request: Request, in map: TransactionMap) throws -> UInt32? {
    try withServerKey(request) { map.find($0) }
}

/// Inserts `request` and expects a new entry.
@discardableResult
private func insertNew(_ request: Request, value: UInt32, into map: inout TransactionMap) throws
    -> TransactionMap.Handle {
    try #require(try insertServer(request, value: value, into: &map).insertedHandle)
}

extension TransactionMap.InsertResult {
    fileprivate var insertedHandle: TransactionMap.Handle? {
        if case .inserted(let handle) = self { return handle }
        return nil
    }
}

private func makeMap(capacity: Int = 64, keyBytes: Int = 128) -> TransactionMap {
    TransactionMap(capacity: capacity, keyBytes: keyBytes, seed: 0x5EED_0F_7E57)
}

@Suite struct TransactionMapTests {
    // MARK: Server transactions, RFC 3261 branch

    @Test func retransmissionMatchesItsTransaction() throws {
        var map = makeMap()
        let invite = Request()
        let handle = try insertNew(invite, value: 7, into: &map)
        #expect(map.count == 1)
        // A retransmission: the same bytes, parsed again.
        #expect(try findServer(invite, in: map) == 7)
        #expect(try insertServer(invite, value: 8, into: &map) == .exists(handle, value: 7))
        #expect(map.count == 1)
    }

    @Test func differentBranchSentByOrMethodDoNotMatch() throws {
        var map = makeMap()
        try insertNew(Request(), value: 1, into: &map)
        var otherBranch = Request()
        otherBranch.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK776asdhdt;rport"
        var otherHost = Request()
        otherHost.via = "SIP/2.0/UDP pc34.atlanta.example.com:5062;branch=z9hG4bK776asdhds;rport"
        var otherPort = Request()
        otherPort.via = "SIP/2.0/UDP pc33.atlanta.example.com:5063;branch=z9hG4bK776asdhds;rport"
        var otherMethod = Request()
        otherMethod.method = "OPTIONS"
        for request in [otherBranch, otherHost, otherPort, otherMethod] {
            #expect(try findServer(request, in: map) == nil)
        }
        // Fields outside the RFC 3261 key do not matter: a retransmission may differ in them.
        var otherCallID = Request()
        otherCallID.callID = "different@pc33.atlanta.example.com"
        otherCallID.cseq = 1
        #expect(try findServer(otherCallID, in: map) == 1)
    }

    @Test func absentSentByPortIsTheTransportsDefault() throws {
        var map = makeMap()
        var udp = Request()
        udp.via = "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKudp"
        try insertNew(udp, value: 1, into: &map)
        udp.via = "SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKudp"
        #expect(try findServer(udp, in: map) == 1)

        var tls = Request()
        tls.via = "SIP/2.0/TLS pc33.atlanta.example.com;branch=z9hG4bKtls"
        try insertNew(tls, value: 2, into: &map)
        tls.via = "SIP/2.0/TLS pc33.atlanta.example.com:5061;branch=z9hG4bKtls"
        #expect(try findServer(tls, in: map) == 2)
        tls.via = "SIP/2.0/TLS pc33.atlanta.example.com:5060;branch=z9hG4bKtls"
        #expect(try findServer(tls, in: map) == nil)
    }

    @Test func nonSuccessACKMatchesItsINVITE() throws {
        var map = makeMap()
        let invite = Request()
        let handle = try insertNew(invite, value: 3, into: &map)
        #expect(try findServer(invite.nonSuccessACK, in: map) == 3)
        #expect(try insertServer(invite.nonSuccessACK, value: 4, into: &map) == .exists(handle, value: 3))
    }

    @Test func successACKWithItsOwnBranchMatchesNothing() throws {
        var map = makeMap()
        let invite = Request()
        try insertNew(invite, value: 3, into: &map)
        // RFC 3261 §13.2.2.4: the UAC core sends the ACK for a 2xx in a new transaction, with a new branch.
        var ack = invite.nonSuccessACK
        ack.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK5d8a2f1;rport"
        ack.uri = "sip:bob@192.0.2.4"
        #expect(try findServer(ack, in: map) == nil)
    }

    @Test func cancelFindsItsINVITEButIsItsOwnTransaction() throws {
        var map = makeMap()
        let invite = Request()
        let inviteHandle = try insertNew(invite, value: 10, into: &map)
        #expect(try findServer(invite.cancel, in: map) == nil)
        #expect(try withCancelTarget(invite.cancel) { map.find($0) } == 10)
        let cancelHandle = try insertNew(invite.cancel, value: 11, into: &map)
        #expect(cancelHandle != inviteHandle)
        #expect(try findServer(invite.cancel, in: map) == 11)
        #expect(try findServer(invite, in: map) == 10)
        #expect(try withCancelTarget(invite.cancel) { map.find($0) } == 10)

        // A CANCEL for another INVITE (another branch) finds nothing; only a CANCEL has a target.
        var otherCancel = invite.cancel
        otherCancel.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bKother;rport"
        #expect(try withCancelTarget(otherCancel) { map.find($0) } == nil)
        #expect(try withMessage(invite.bytes) { TransactionKey.cancelTarget(for: $0) == nil })
        #expect(try withMessage(response()) { TransactionKey.server(for: $0) == nil })
    }

    @Test func extensionMethodsCompareByName() throws {
        var map = makeMap()
        var foo = Request()
        foo.method = "FOO"
        try insertNew(foo, value: 1, into: &map)
        #expect(try findServer(foo, in: map) == 1)
        var bar = foo
        bar.method = "BAR"
        #expect(try findServer(bar, in: map) == nil)
        // Methods are case-sensitive (RFC 3261 §7.1): "foo" is another method.
        var lowercase = foo
        lowercase.method = "foo"
        #expect(try findServer(lowercase, in: map) == nil)
    }

    // MARK: Case rules

    @Test func branchAndSentByHostIgnoreCase() throws {
        var map = makeMap()
        var invite = Request()
        invite.via = "SIP/2.0/UDP PC33.Atlanta.Example.COM:5062;branch=z9hG4bKAbCdEf"
        try insertNew(invite, value: 5, into: &map)
        // §7.3.1: tokens and parameter values compare without case; host names too.
        invite.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bKaBcDeF"
        #expect(try findServer(invite, in: map) == 5)
        // The magic cookie itself must be exact: this one makes an RFC 2543 key, which does not match.
        invite.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=Z9HG4BKabcdef"
        #expect(try findServer(invite, in: map) == nil)
    }

    @Test func callIDAndRequestURICompareByteForByteInTheFallback() throws {
        var map = makeMap(keyBytes: 256)  // RFC 2543 keys carry whole headers
        var invite = Request()
        invite.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062"
        try insertNew(invite, value: 6, into: &map)
        var otherCase = invite
        otherCase.callID = invite.callID.uppercased()  // Call-IDs are case-sensitive (§20.8)
        #expect(try findServer(otherCase, in: map) == nil)
        otherCase = invite
        otherCase.uri = "sip:Bob@biloxi.example.com"
        #expect(try findServer(otherCase, in: map) == nil)
        // Tags are tokens: any case.
        var tagCase = invite
        tagCase.fromTag = "abcDEF"
        try insertNew(tagCase, value: 7, into: &map)
        tagCase.fromTag = "ABCdef"
        #expect(try findServer(tagCase, in: map) == 7)
    }

    // MARK: Server transactions, RFC 2543 fallback

    @Test func rfc2543RequestsMatchOnTheirDialogFields() throws {
        var map = makeMap(keyBytes: 256)  // RFC 2543 keys carry whole headers
        var invite = Request()
        invite.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=776asdhds"  // no magic cookie
        try insertNew(invite, value: 20, into: &map)
        #expect(try findServer(invite, in: map) == 20)
        #expect(try findServer(invite.nonSuccessACK, in: map) == 20)
        #expect(try withCancelTarget(invite.cancel) { map.find($0) } == 20)
        #expect(try findServer(invite.cancel, in: map) == nil)

        var changes: [Request] = []
        var changed = invite
        changed.cseq += 1
        changes.append(changed)
        changed = invite
        changed.callID = "other@pc33.atlanta.example.com"
        changes.append(changed)
        changed = invite
        changed.fromTag = "99"
        changes.append(changed)
        changed = invite
        changed.uri = "sip:bob@192.0.2.4"
        changes.append(changed)
        changed = invite
        changed.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=776asdhds;received=192.0.2.10"
        changes.append(changed)
        for request in changes {
            #expect(try findServer(request, in: map) == nil)
            #expect(try findServer(request.nonSuccessACK, in: map) == nil)
        }
        // A 2543 2xx ACK goes to the Contact: another Request-URI, so it does not match.
        var successACK = invite.nonSuccessACK
        successACK.uri = "sip:bob@192.0.2.4"
        #expect(try findServer(successACK, in: map) == nil)
    }

    @Test func rfc2543NonINVITERequestsKeepTheirToTag() throws {
        var map = makeMap(keyBytes: 256)  // RFC 2543 keys carry whole headers
        var bye = Request()
        bye.method = "BYE"
        bye.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062"
        bye.toTag = "a6c85cf"
        try insertNew(bye, value: 30, into: &map)
        #expect(try findServer(bye, in: map) == 30)
        bye.toTag = "a6c85cg"
        #expect(try findServer(bye, in: map) == nil)
        bye.toTag = nil
        #expect(try findServer(bye, in: map) == nil)
    }

    @Test func serverAndClientKeysNeverMeet() throws {
        var map = makeMap()
        let request = outgoing()
        // The same branch as the key of a server transaction and of a client transaction: two entries.
        let server = try withMessage(request) { map.insert(try #require(TransactionKey.server(for: $0)), value: 1) }
        let client = try withClientKey(request) { map.insert($0, value: 2) }
        #expect(server.insertedHandle != nil && client.insertedHandle != nil)
        #expect(map.count == 2)
    }

    // MARK: Client transactions

    @Test func responsesMatchTheirClientTransaction() throws {
        var map = makeMap()
        #expect(try withClientKey(outgoing()) { map.insert($0, value: 40) }.insertedHandle != nil)
        #expect(try withClientKey(response(status: "100 Trying")) { map.find($0) } == 40)
        #expect(try withClientKey(response(status: "486 Busy Here")) { map.find($0) } == 40)
        // The CANCEL the edge sends reuses the INVITE's branch (§9.1) but its responses are its own (§17.1.3).
        #expect(try withClientKey(response(status: "200 OK", cseqMethod: "CANCEL")) { map.find($0) } == nil)
        let cancelResult = try withClientKey(outgoing(method: "CANCEL")) { map.insert($0, value: 41) }
        #expect(try withClientKey(response(status: "200 OK", cseqMethod: "CANCEL")) { map.find($0) } == 41)
        #expect(try withClientKey(response(status: "487 Request Terminated")) { map.find($0) } == 40)
        #expect(cancelResult.insertedHandle != nil)
        // Another branch, or the client's own branch (the second Via), is not ours.
        #expect(try withClientKey(response(branch: "z9hG4bKedge0123456789abcdee")) { map.find($0) } == nil)
        #expect(try withClientKey(response(branch: "z9hG4bK776asdhds")) { map.find($0) } == nil)
    }

    @Test func clientKeyFromTheBranchTheEdgeWroteEqualsTheParsedOne() throws {
        var map = makeMap()
        // The edge has the branch in its output buffer and the method from the request it forwards.
        let prefix = "Via: SIP/2.0/UDP 203.0.113.1:5060;rport;branch="
        let branch = "z9hG4bKedge0123456789abcdef"
        let output = Array((prefix + branch + "\r\n").utf8)
        let inserted = try withMessage(outgoing()) { request in
            output.withPacketBytes { bytes in
                let key = TransactionKey.client(branch: ByteSpan(offset: prefix.utf8.count, length: branch.utf8.count),
                                                in: bytes, method: request.method, methodBytes: request.bytes)
                return map.insert(key, value: 50)
            }
        }
        let handle = try #require(inserted.insertedHandle)
        #expect(try withClientKey(outgoing()) { map.insert($0, value: 51) } == .exists(handle, value: 50))
        #expect(try withClientKey(response()) { map.find($0) } == 50)
    }

    // MARK: Capacity and storage

    @Test func fullMapRefusesNewKeysAndEvictsNothing() throws {
        var map = makeMap(capacity: 4)
        func invite(_ number: Int) -> Request {
            var request = Request()
            request.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=z9hG4bK-full-\(number)"
            return request
        }
        var handles: [TransactionMap.Handle] = []
        for number in 0..<4 {
            handles.append(try insertNew(invite(number), value: UInt32(number), into: &map))
        }
        #expect(try insertServer(invite(4), value: 4, into: &map) == .full)
        #expect(map.count == 4)
        for number in 0..<4 {
            #expect(try findServer(invite(number), in: map) == UInt32(number))
        }
        // A retransmission still matches when the map is full.
        #expect(try insertServer(invite(2), value: 9, into: &map) == .exists(handles[2], value: 2))
        let removed = map.remove(handles[1])
        #expect(removed)
        try insertNew(invite(4), value: 4, into: &map)
        #expect(try findServer(invite(4), in: map) == 4)
        #expect(try findServer(invite(1), in: map) == nil)
    }

    @Test func removeThenReinsert() throws {
        var map = makeMap()
        let invite = Request()
        let first = try insertNew(invite, value: 1, into: &map)
        #expect(map.value(of: first) == 1)
        #expect(try withServerKey(invite) { map.remove($0) } == 1)
        #expect(map.count == 0)
        #expect(try findServer(invite, in: map) == nil)
        #expect(try withServerKey(invite) { map.remove($0) } == nil)
        #expect(map.value(of: first) == nil)
        let second = try insertNew(invite, value: 2, into: &map)
        // The stale handle names the same entry but an older generation: it no longer removes anything.
        let removedByStaleHandle = map.remove(first)
        #expect(!removedByStaleHandle)
        #expect(try findServer(invite, in: map) == 2)
        let removedOnce = map.remove(second)
        let removedTwice = map.remove(second)
        #expect(removedOnce && !removedTwice)
        #expect(map.count == 0)
    }

    @Test func keyLongerThanItsStorageIsNotTracked() throws {
        var small = makeMap(keyBytes: 32)  // two header words and two words of fields
        var invite = Request()
        invite.via = "SIP/2.0/UDP pc33host:5062;branch=z9hG4bKs"  // branch and host take a word each
        try insertNew(invite, value: 1, into: &small)
        invite.via = "SIP/2.0/UDP pc33.host:5062;branch=z9hG4bKs"  // the host takes two
        #expect(try insertServer(invite, value: 2, into: &small) == .keyTooLong)
        #expect(try findServer(invite, in: small) == nil)
        #expect(try withServerKey(invite) { small.remove($0) } == nil)
        #expect(small.count == 1)

        // An RFC 2543 key carries the Request-URI, Call-ID and top Via whole: this one takes 168 bytes.
        var fallback = makeMap()
        invite.via = "SIP/2.0/UDP pc33.atlanta.example.com:5062;branch=776asdhds"
        #expect(try insertServer(invite, value: 2, into: &fallback) == .keyTooLong)

        // 256 bytes: two header words and 30 words of fields.
        var large = makeMap(keyBytes: 256)
        invite.via = "SIP/2.0/UDP host:5062;branch=z9hG4bK" + String(repeating: "x", count: 225)  // 29 words + 1
        try insertNew(invite, value: 3, into: &large)
        invite.via = "SIP/2.0/UDP host:5062;branch=z9hG4bK" + String(repeating: "x", count: 226)
        #expect(try insertServer(invite, value: 4, into: &large) == .keyTooLong)

        // A field longer than 255 bytes is too long for any map (its length is stored in a byte).
        var largest = makeMap(keyBytes: 2_040)
        invite.via = "SIP/2.0/UDP host:5062;branch=z9hG4bK" + String(repeating: "x", count: 249)
        #expect(try insertServer(invite, value: 5, into: &largest) == .keyTooLong)
        invite.via = "SIP/2.0/UDP host:5062;branch=z9hG4bK" + String(repeating: "x", count: 248)
        try insertNew(invite, value: 5, into: &largest)
    }

    @Test func storageIsAllocatedOnceForTheCapacity() {
        let map = TransactionMap(capacity: 65_536)
        // 131,072 index slots of 8 bytes (load factor at most 1/2); per transaction, 8 bytes of value and
        // generation and 128 of key.
        #expect(map.storageBytes == 131_072 * 8 + 65_536 * (8 + 128))
        #expect(TransactionMap(capacity: 50_000).storageBytes == 131_072 * 8 + 50_000 * (8 + 128))
    }

    // MARK: Churn

    /// Random inserts and removals (by key and by handle) against a Dictionary, in a small map whose probe runs
    /// wrap around the index, and in a larger one that fills up: backward-shift deletion must keep every live key
    /// reachable and every removed one gone.
    @Test(arguments: [(16, 48, 400_000), (2_048, 3_000, 600_000)])
    func churnAgreesWithADictionary(capacity: Int, keySpace: Int, operations: Int) {
        var map = TransactionMap(capacity: capacity, keyBytes: 32, seed: UInt64(capacity))
        // Every key is a client key over one buffer of branches: no parse per operation.
        var text: [UInt8] = []
        var spans: [ByteSpan] = []
        for number in 0..<keySpace {
            let branch = Array("z9hG4bK\(number)".utf8)
            spans.append(ByteSpan(offset: text.count, length: branch.count))
            text += branch
        }
        var model: [Int: (value: UInt32, handle: TransactionMap.Handle)] = [:]
        var random = SplitMix64(seed: 0xC0FFEE)
        var mismatches = 0
        text.withPacketBytes { bytes in
            func key(_ number: Int) -> TransactionKey {
                TransactionKey.client(branch: spans[number], in: bytes, method: SIPMethod(known: .invite, span: .empty),
                                      methodBytes: bytes)
            }
            for operation in 0..<operations {
                let number = Int(random.next() % UInt64(keySpace))
                switch random.next() % 4 {
                case 0, 1:
                    let value = UInt32(operation)
                    let result = map.insert(key(number), value: value)
                    if let existing = model[number] {
                        if result != .exists(existing.handle, value: existing.value) { mismatches += 1 }
                    } else if model.count == capacity {
                        if result != .full { mismatches += 1 }
                    } else if case .inserted(let handle) = result {
                        model[number] = (value, handle)
                    } else {
                        mismatches += 1
                    }
                case 2:
                    if map.remove(key(number)) != model.removeValue(forKey: number)?.value { mismatches += 1 }
                default:
                    if let existing = model.removeValue(forKey: number) {
                        if !map.remove(existing.handle) { mismatches += 1 }
                    } else if map.find(key(number)) != nil {
                        mismatches += 1
                    }
                }
                if map.count != model.count { mismatches += 1 }
                if operation % 50_000 == 0 || operation == operations - 1 {
                    for number in 0..<keySpace where map.find(key(number)) != model[number]?.value {
                        mismatches += 1
                    }
                }
            }
        }
        #expect(mismatches == 0)
    }
}
