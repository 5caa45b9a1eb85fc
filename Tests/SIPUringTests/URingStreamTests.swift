import SIPBytes
import SIPSettings
import SIPUring
import Testing

#if canImport(Glibc)
import Glibc
#endif

// TCP through the worker ring, against real loopback clients written with plain blocking sockets. Every wait has
// a deadline, so a regression fails the test instead of hanging the run.

/// A blocking loopback TCP client with receive/send timeouts (a stuck test fails within `timeoutSeconds`).
final class LoopbackClient {
    let fd: Int32
    let localAddress: EndpointAddress

    /// Connects from `sourceAddress` (any 127.x address) to `destination`. `receiveBufferBytes` shrinks the
    /// client's receive window (a slow reader).
    init(to destination: EndpointAddress, from sourceAddress: String = "127.0.0.1", receiveBufferBytes: Int32? = nil,
         timeoutSeconds: Int = 3) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError.failed("socket", errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        if var size = receiveBufferBytes {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var source = Self.socketAddress(sourceAddress, port: 0)
        guard withUnsafePointer(to: &source, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }) == 0 else { let error = errno; close(fd); throw ClientError.failed("bind", error) }
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = destination.port.bigEndian
        target.sin_addr.s_addr = UInt32(truncatingIfNeeded: destination.high >> 32).bigEndian
        guard withUnsafePointer(to: &target, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }) == 0 else { let error = errno; close(fd); throw ClientError.failed("connect", error) }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        localAddress = EndpointAddress(family: .ipv4, high: UInt64(UInt32(bigEndian: local.sin_addr.s_addr)) << 32,
                                       low: 0, port: UInt16(bigEndian: local.sin_port))
    }

    deinit { close(fd) }

    static func socketAddress(_ text: String, port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        _ = inet_pton(AF_INET, text, &address.sin_addr)
        return address
    }

    /// Writes all of `bytes` (blocking, bounded by the send timeout).
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent <= 0 { return false }
            offset += sent
        }
        return true
    }

    /// Reads until `count` bytes arrived; fewer on EOF or timeout.
    func receive(count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < count {
            let got = recv(fd, &chunk, min(chunk.count, count - bytes.count), 0)
            if got <= 0 { break }
            bytes += chunk[0..<got]
        }
        return bytes
    }

    /// Whatever is queued now, at most `limit` bytes, without waiting.
    func receiveAvailable(limit: Int) -> [UInt8] {
        var chunk = [UInt8](repeating: 0, count: limit)
        let got = recv(fd, &chunk, limit, Int32(MSG_DONTWAIT))
        return got > 0 ? Array(chunk[0..<got]) : []
    }

    enum ClientError: Error { case failed(String, Int32) }
}

/// One event, copied out of the ring (its buffer is recycled at once).
struct SeenEvent {
    let kind: URingEvent.Kind
    let key: UInt64
    let tag: UInt32
    let result: Int32
    let needsRearm: Bool
    let bytes: [UInt8]
    let source: EndpointAddress?
}

/// Waits on `ring` until `done` says so or `timeout` passes; copies and recycles every event, and re-arms the
/// stream receives of `rearm` (key -> fd) that need it while their connection is alive (data or -ENOBUFS).
func collect(_ ring: URing, timeout: Duration = .seconds(3), rearm: [UInt64: Int32] = [:],
             until done: ([SeenEvent]) -> Bool) -> [SeenEvent] {
    var seen: [SeenEvent] = []
    let deadline = ContinuousClock.now + timeout
    while !done(seen), ContinuousClock.now < deadline {
        let count = ring.wait(completions: 1, timeoutMicroseconds: 10_000)
        for i in 0..<count {
            let event = ring.event(i)
            seen.append(SeenEvent(kind: event.kind, key: event.streamKey, tag: event.socketTag, result: event.result,
                                  needsRearm: event.needsRearm,
                                  bytes: event.payload.map { $0.copyBytes($0.all) } ?? [], source: event.source))
            ring.recycle(event)
            if event.kind == .streamData, event.needsRearm, event.result > 0 || event.result == -ENOBUFS,
               let fd = rearm[event.streamKey] {
                do { try ring.armStreamReceive(descriptor: fd, key: event.streamKey) } catch {
                    Issue.record("re-arm failed: \(error)")
                }
            }
        }
    }
    return seen
}

/// Accepts one connection through the ring: returns the accepted event.
func acceptOne(_ ring: URing) -> SeenEvent? {
    collect(ring) { $0.contains { $0.kind == .accepted } }.first { $0.kind == .accepted }
}

func streamBytes(_ events: [SeenEvent], key: UInt64) -> [UInt8] {
    events.filter { $0.kind == .streamData && $0.key == key && $0.result > 0 }.flatMap(\.bytes)
}

let loopback = EndpointAddress.parse("127.0.0.1", port: 0)!

@Suite struct URingStreamTests {
    /// A key using all 64 bits (slot index in the high half, generation in the low half).
    static let key: UInt64 = 0xFEDC_BA98_7654_3210

    @Test(arguments: [false, true])
    func acceptedConnectionDeliversManySmallWritesInOrderThenEndOfStream(singleShot: Bool) throws {
        var options = URingOptions()
        options.singleShotStreamReceive = singleShot
        options.receiveBuffers = 4
        options.receiveBufferSize = 1_024
        let ring = try URing(options: options)
        let listener = try StreamListener(binding: loopback)
        try ring.armAccept(on: listener, tag: 0xABCDEF)

        let client = try LoopbackClient(to: listener.localAddress, from: "127.0.0.2")
        let accepted = try #require(acceptOne(ring))
        #expect(accepted.tag == 0xABCDEF)
        #expect(accepted.result >= 0)
        #expect(accepted.source == client.localAddress, "the peer is the client's address and port")
        let fd = accepted.result
        defer { closeStream(fd) }
        #expect(fcntl(fd, F_GETFL) & O_NONBLOCK != 0, "accepted sockets are non-blocking")
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "accepted sockets are close-on-exec")
        #expect(setNoDelay(fd))
        try ring.armStreamReceive(descriptor: fd, key: Self.key)

        // 1,000 small writes (Nagle off, so many segments), about 9 KB queued before the receive first runs: more
        // than the 4 buffers hold, so a multishot receive also runs out (-ENOBUFS) and is re-armed on the way.
        var expected: [UInt8] = []
        for i in 0..<1_000 {
            let piece = Array("part \(i);".utf8)
            expected += piece
            #expect(client.send(piece))
        }
        let events = collect(ring, rearm: [Self.key: fd]) { streamBytes($0, key: Self.key).count >= expected.count }
        #expect(streamBytes(events, key: Self.key) == expected, "every byte, in order")
        #expect(events.allSatisfy { $0.key == Self.key }, "the 64-bit key comes back exactly")
        if singleShot { #expect(events.allSatisfy { $0.needsRearm }, "single-shot receives always need a re-arm") }

        // A small reply through the ring (a send slot) reaches the client.
        let reply = Array("SIP/2.0 200 OK\r\n\r\n".utf8)
        #expect(ring.sendStream(reply[...], descriptor: fd, key: Self.key))
        let sent = collect(ring) { $0.contains { $0.kind == .streamSent } }
        #expect(sent.first { $0.kind == .streamSent }?.result == Int32(reply.count))
        #expect(client.receive(count: reply.count) == reply)

        // The client hangs up: the connection reports end of stream (result 0).
        close(client.fd)
        let end = collect(ring, rearm: [Self.key: fd]) { $0.contains { $0.kind == .streamData && $0.result == 0 } }
        let last = try #require(end.last { $0.kind == .streamData })
        #expect(last.result == 0 && last.key == Self.key && last.needsRearm)
    }

    @Test func largeSendArrivesWholeAndInOrderAtASlowReader() throws {
        let ring = try URing()
        let listener = try StreamListener(binding: loopback)
        try ring.armAccept(on: listener, tag: 1)
        let client = try LoopbackClient(to: listener.localAddress, receiveBufferBytes: 4_096)
        let fd = try #require(acceptOne(ring)).result
        defer { closeStream(fd) }
        var small: Int32 = 4_096
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))

        // 200 KB: larger than a send slot (heap copy) and far larger than the socket buffers (short sends).
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
        #expect(ring.sendStream(payload[...], descriptor: fd, key: Self.key))

        // Nobody reads yet: the kernel takes only part, so the send cannot have completed.
        let early = collect(ring, timeout: .milliseconds(100)) { _ in false }
        #expect(!early.contains { $0.kind == .streamSent }, "a send completes only when every byte was taken")

        // Read 4 KB at a time between short ring waits until everything arrived and the send reported.
        var received: [UInt8] = []
        var sentEvents: [SeenEvent] = []
        let deadline = ContinuousClock.now + .seconds(5)
        while (received.count < payload.count || sentEvents.isEmpty) && ContinuousClock.now < deadline {
            sentEvents += collect(ring, timeout: .milliseconds(1)) { _ in false }.filter { $0.kind == .streamSent }
            received += client.receiveAvailable(limit: 4_096)
        }
        #expect(received.count == payload.count)
        #expect(received == payload, "whole and in order")
        #expect(sentEvents.count == 1, "one completion for the whole send")
        #expect(sentEvents.first?.result == Int32(payload.count))
        #expect(sentEvents.first?.key == Self.key)
    }

    @Test func cancelAndCloseStopEventsAndKeepBuffersCirculating() throws {
        // 8 buffers; 24 connections each take one and are cancelled mid-life. A leaked buffer would starve the
        // ring long before the last connection.
        var options = URingOptions()
        options.receiveBuffers = 8
        options.receiveBufferSize = 1_024
        let ring = try URing(options: options)
        let listener = try StreamListener(binding: loopback)
        try ring.armAccept(on: listener, tag: 2)

        for round in 0..<24 {
            let key = (UInt64(round) << 32) | 0xDEAD
            let client = try LoopbackClient(to: listener.localAddress)
            let fd = try #require(acceptOne(ring), "round \(round)").result
            try ring.armStreamReceive(descriptor: fd, key: key)
            #expect(client.send(Array("hello \(round)".utf8)))
            let got = collect(ring, rearm: [key: fd]) { streamBytes($0, key: key).count >= 7 }
            #expect(String(decoding: streamBytes(got, key: key), as: UTF8.self) == "hello \(round)")

            #expect(ring.cancelStream(descriptor: fd))
            closeStream(fd)
            // The armed receive ends with -ECANCELED; nothing else follows for this key.
            var after = collect(ring, timeout: .seconds(1)) { $0.contains { $0.key == key } }
            after += collect(ring, timeout: .milliseconds(20)) { _ in false }
            let mine = after.filter { $0.key == key }
            #expect(mine.count == 1 && mine.first?.result == -ECANCELED, "round \(round): \(mine.map(\.result))")
            #expect(!after.contains { $0.kind == .accepted }, "the listener's accept is not touched")
            // The client keeps talking to a closed connection: no event may appear for it.
            _ = client.send(Array("late".utf8))
            let late = collect(ring, timeout: .milliseconds(30)) { _ in false }
            #expect(late.isEmpty)
        }

        // A fresh connection still gets 20 KB through the 8 recycled 1 KB buffers.
        let client = try LoopbackClient(to: listener.localAddress)
        let fd = try #require(acceptOne(ring)).result
        defer { closeStream(fd) }
        try ring.armStreamReceive(descriptor: fd, key: 99)
        let bulk = (0..<20_000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(client.send(bulk))
        let events = collect(ring, rearm: [99: fd]) { streamBytes($0, key: 99).count >= bulk.count }
        #expect(streamBytes(events, key: 99) == bulk)
    }

    @Test func cancellingTheListenerStopsAccepting() throws {
        let ring = try URing()
        let listener = try StreamListener(binding: loopback)
        try ring.armAccept(on: listener, tag: 3)
        #expect(ring.cancelStream(descriptor: listener.descriptor))
        let ended = collect(ring, timeout: .seconds(1)) { $0.contains { $0.kind == .accepted } }
        let last = try #require(ended.last)
        #expect(last.kind == .accepted && last.result == -ECANCELED && last.needsRearm)
        _ = try LoopbackClient(to: listener.localAddress)  // still queued by the kernel's backlog
        let none = collect(ring, timeout: .milliseconds(100)) { _ in false }
        #expect(none.isEmpty, "no accept is armed any more")
    }

    @Test func connectReachesAListenerAndIsRefusedByAClosedPort() throws {
        let ring = try URing()
        let listener = try StreamListener(binding: loopback)
        let fd = try openStreamSocket(family: .ipv4)
        defer { closeStream(fd) }
        try ring.connect(descriptor: fd, key: Self.key, to: listener.localAddress)
        let done = collect(ring) { $0.contains { $0.kind == .connected } }
        #expect(done.first { $0.kind == .connected }.map { ($0.result, $0.key) } ?? (-1, 0) == (0, Self.key))

        // The connected socket carries bytes sent through the ring.
        #expect(ring.sendStream(ArraySlice("OPTIONS".utf8), descriptor: fd, key: Self.key))
        #expect(collect(ring) { $0.contains { $0.kind == .streamSent } }.last?.result == 7)
        var ready = pollfd(fd: listener.descriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 2_000) == 1)
        let peer = accept(listener.descriptor, nil, nil)
        #expect(peer >= 0)
        var buffer = [UInt8](repeating: 0, count: 16)
        var pollPeer = pollfd(fd: peer, events: Int16(POLLIN), revents: 0)
        #expect(poll(&pollPeer, 1, 2_000) == 1)
        #expect(recv(peer, &buffer, 16, 0) == 7)
        close(peer)

        // A port nobody listens on (a listener was there a moment ago): refused.
        let closedPort = try StreamListener(binding: loopback).localAddress
        let refusedFD = try openStreamSocket(family: .ipv4)
        defer { closeStream(refusedFD) }
        try ring.connect(descriptor: refusedFD, key: 42, to: closedPort)
        let refused = collect(ring) { $0.contains { $0.kind == .connected } }
        #expect(refused.first { $0.kind == .connected }.map { ($0.result, $0.key) } ?? (0, 0) == (-ECONNREFUSED, 42))
    }

    @Test func datagramsStillFlowThroughTheSameRing() throws {
        let ring = try URing()
        let socket = try UDPSocket(binding: loopback, reusePort: false)
        let peer = try UDPSocket(binding: loopback, reusePort: false)
        try ring.armReceive(on: socket, tag: 5)
        let listener = try StreamListener(binding: loopback)
        try ring.armAccept(on: listener, tag: 6)  // a stream request in flight beside the datagram receive

        #expect(peer.send(Array("OPTIONS sip:a SIP/2.0".utf8), to: socket.localAddress))
        let got = collect(ring) { $0.contains { $0.kind == .datagram } }
        let datagram = try #require(got.first { $0.kind == .datagram })
        #expect(datagram.tag == 5 && datagram.source == peer.localAddress)
        #expect(String(decoding: datagram.bytes, as: UTF8.self) == "OPTIONS sip:a SIP/2.0")
        #expect(ring.send(Array("SIP/2.0 200 OK".utf8), on: socket, tag: 5, to: peer.localAddress))
        #expect(ring.sendsInFlight == 1)
        // A send that succeeds reports no event: its completion only frees its slot.
        let afterSend = collect(ring, timeout: .milliseconds(300)) { _ in ring.sendsInFlight == 0 }
        #expect(ring.sendsInFlight == 0 && !afterSend.contains { $0.kind == .sendFailed })
        let batch = DatagramBatch(capacity: 4, bufferSize: 256)
        var ready = pollfd(fd: peer.descriptor, events: Int16(POLLIN), revents: 0)
        #expect(poll(&ready, 1, 2_000) == 1)
        #expect(batch.receive(from: peer) == 1)
    }

    @Test func tcpListenersSteerEachClientAddressToOneListener() throws {
        let first = try StreamListener(binding: loopback)
        let second = try StreamListener(binding: EndpointAddress.parse("127.0.0.1", port: first.localAddress.port)!)
        try first.attachSourceSteering(groupSize: 2)

        var clients: [LoopbackClient] = []
        for source in 1...4 {
            for _ in 0..<3 { clients.append(try LoopbackClient(to: first.localAddress, from: "127.0.0.\(source)")) }
        }
        // The handshakes are done (the clients' connect returned): the connections wait in the backlogs.
        var total = 0
        for (index, listener) in [first, second].enumerated() {
            while true {
                var peer = sockaddr_in()
                var length = socklen_t(MemoryLayout<sockaddr_in>.size)
                let fd = withUnsafeMutablePointer(to: &peer) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener.descriptor, $0, &length) }
                }
                if fd < 0 { break }  // EAGAIN: this backlog is empty (non-blocking listener)
                close(fd)
                total += 1
                let address = UInt32(bigEndian: peer.sin_addr.s_addr)
                #expect(Int(address % 2) == index, "client \(address & 0xFF) landed on listener \(index)")
            }
        }
        #expect(total == clients.count)
    }
}
