import SIPBytes
import SIPProxyCore
import SIPSettings
@testable import SIPTransport
import Testing

private let peer = EndpointAddress.parse("192.0.2.7", port: 40_000)!

private func connection(poolSlot: Int? = nil) -> StreamConnection {
    StreamConnection(key: 0x0001_0003, descriptor: -1, transport: .tcp, peer: peer, now: 0, tls: nil,
                     poolSlot: poolSlot)
}

private func unread(_ input: StreamInput) -> [UInt8] {
    input.withUnread { $0.copyBytes($0.all) }
}

/// The parts of a stream connection that hold its state, driven without sockets.
@Suite struct StreamConnectionTests {
    @Test func inputIsConsumedByMovingTheReaderNotTheBytes() {
        var input = StreamInput()
        Array("AAAABBBBCCCC".utf8).withPacketBytes { input.append($0) }
        input.consume(4)
        // Offsets of the unread view start at the first unread byte, and nothing was moved to get there.
        #expect(unread(input) == Array("BBBBCCCC".utf8))
        #expect(input.readIndex == 4)
        #expect(input.storage.count == 12)
        input.consume(4)
        #expect(unread(input) == Array("CCCC".utf8))
        // Everything read: the buffer starts over (keeping its capacity).
        input.consume(4)
        #expect(input.unreadCount == 0)
        #expect(input.readIndex == 0)
        #expect(input.storage.isEmpty)
    }

    @Test func consumedBytesAreDroppedBeforeAnAppendOnceTheyAreHalfTheBuffer() {
        var input = StreamInput()
        Array("0123456789".utf8).withPacketBytes { input.append($0) }
        input.consume(3)
        // Less than half consumed: the append keeps the prefix where it is.
        Array("ab".utf8).withPacketBytes { input.append($0) }
        #expect(input.readIndex == 3)
        input.consume(4)
        // 7 of 12 consumed: the next append drops them first, so the buffer holds one message plus one segment.
        Array("cd".utf8).withPacketBytes { input.append($0) }
        #expect(input.readIndex == 0)
        #expect(unread(input) == Array("789abcd".utf8))
    }

    @Test func oneSendIsInFlightAndTheRestQueuesInOrderUpToTheLimit() {
        var output = SendQueue()
        #expect(output.offer([1, 2][...], limit: 4) == .sendNow)
        output.sendStarted()
        #expect(output.offer([3, 4][...], limit: 4) == .queued)
        #expect(output.offer([5][...], limit: 4) == .queued)
        #expect(output.offer([6, 7][...], limit: 4) == .overflow)
        #expect(output.sendCompleted() == [3, 4, 5])
        #expect(!output.isSending)
        #expect(output.sendCompleted().isEmpty)
        #expect(output.offer([8][...], limit: 4) == .sendNow)
    }

    @Test func aClientConnectionStartsOpenAPooledOneConnecting() {
        let client = connection()
        #expect(client.isUsable && client.isReading)
        #expect(!client.becameReady())
        let pooled = connection(poolSlot: 0)
        #expect(pooled.isConnecting && !pooled.isUsable && pooled.isReading)
        #expect(pooled.becameReady())
        #expect(pooled.isUsable)
        #expect(!pooled.becameReady())
    }

    @Test func closingWaitsForTheSendInFlightAndClosedIsFinal() {
        let waiting = connection()
        waiting.output.sendStarted()
        #expect(!waiting.beginClosing())
        #expect(waiting.lifecycle == .closing && !waiting.isReading)
        _ = waiting.output.sendCompleted()
        #expect(waiting.beginClosing())

        let idle = connection()
        #expect(idle.beginClosing())
        #expect(idle.markClosed())
        #expect(!idle.markClosed())
        #expect(!idle.beginClosing())
        #expect(idle.isClosed && !idle.isReading && !idle.isUsable)
    }
}

/// The upstream pool's decisions: which slot to dial, when, and which connection carries the traffic.
@Suite struct UpstreamPoolTests {
    let core1 = EndpointAddress.parse("10.0.0.2", port: 5060)!
    let core2 = EndpointAddress.parse("10.0.0.3", port: 5060)!

    func settings() -> UpstreamPoolSettings {
        var settings = UpstreamPoolSettings()
        settings.connectionsPerUpstream = 2
        settings.reconnectMinMilliseconds = 100
        settings.reconnectMaxMilliseconds = 350
        return settings
    }

    @Test func udpUpstreamsNeedNoPool() {
        #expect(UpstreamPool(upstreams: [core1], transport: .udp, settings: settings()).isEmpty)
        let pool = UpstreamPool(upstreams: [core1, core2], transport: .tls, settings: settings())
        #expect(pool.slots.map(\.upstream) == [core1, core1, core2, core2])
        #expect(pool.slotsToDial(now: 0) == [0, 1, 2, 3])
    }

    @Test func aLostConnectionIsRedialledAfterABackoffThatDoublesUpToTheMaximum() {
        var pool = UpstreamPool(upstreams: [core1], transport: .tcp, settings: settings())
        var now: UInt64 = 1_000
        var waits: [UInt64] = []
        for _ in 0..<4 {
            let link = connection(poolSlot: 0)
            pool.dialling(0, on: link)
            #expect(!pool.slotsToDial(now: now).contains(0))
            pool.lost(link, now: now)
            let next = pool.slots[0].nextAttempt
            waits.append(next - now)
            #expect(!pool.slotsToDial(now: next - 1).contains(0))
            #expect(pool.slotsToDial(now: next).contains(0))
            now = next
        }
        #expect(waits == [100, 200, 350, 350])
        // A connection that worked resets the backoff.
        let link = connection(poolSlot: 0)
        pool.dialling(0, on: link)
        pool.connected(0)
        pool.lost(link, now: now)
        #expect(pool.slots[0].nextAttempt - now == 100)
    }

    @Test func theFirstUsableConnectionCarriesTheTraffic() {
        var pool = UpstreamPool(upstreams: [core1, core2], transport: .tcp, settings: settings())
        let connecting = connection(poolSlot: 0)
        let ready = connection(poolSlot: 1)
        pool.dialling(0, on: connecting)
        pool.dialling(1, on: ready)
        #expect(pool.connection(to: core1) == nil)
        ready.becameReady()
        #expect(pool.connection(to: core1) === ready)
        connecting.becameReady()
        #expect(pool.connection(to: core1) === connecting)
        #expect(pool.connection(to: core2) == nil)
        // A connection the slot no longer holds does not disturb it.
        pool.lost(connection(poolSlot: 0), now: 5)
        #expect(pool.slots[0].connection === connecting)
    }
}

/// A failed re-arm of a datagram receive is retried, and fails the worker when it stays failed.
@Suite struct PendingRearmsTests {
    @Test func aSocketLeftUnarmedPastTheLimitIsReported() {
        var pending = PendingRearms(limit: 1_000)
        pending.failed(0, now: 10)
        pending.failed(0, now: 500)  // the first failure is what counts
        #expect(pending.overdue(now: 1_009) == nil)
        #expect(pending.overdue(now: 1_010) == 0)
        pending.armed(0)
        #expect(pending.isEmpty)
        #expect(pending.overdue(now: 5_000) == nil)
    }
}
