import SIPBytes
import SIPUring
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct SocketSteeringTests {
    /// Receives whatever is queued on `socket` and returns the source addresses.
    func drainSources(_ socket: UDPSocket) -> [EndpointAddress] {
        let batch = DatagramBatch(capacity: 64, bufferSize: 2_048)
        var sources: [EndpointAddress] = []
        while batch.receive(from: socket) > 0 {
            for i in 0..<batch.count {
                batch.withDatagram(i) { _, source in if let source { sources.append(source) } }
            }
        }
        return sources
    }

    @Test func oneClientAddressAlwaysLandsOnTheSameWorkerSocket() throws {
        let group = 4
        var sockets: [UDPSocket] = []
        sockets.append(try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: true))
        let port = sockets[0].localAddress.port
        for _ in 1..<group {
            sockets.append(try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: port)!, reusePort: true))
        }
        try sockets[0].attachSourceSteering(groupSize: group)

        // Eight clients on different loopback addresses, several datagrams each, from varying source ports.
        let destination = EndpointAddress.parse("127.0.0.1", port: port)!
        var senders: [UDPSocket] = []
        for client in 1...8 {
            for _ in 0..<3 {
                let sender = try UDPSocket(binding: EndpointAddress.parse("127.0.0.\(client)", port: 0)!, reusePort: false)
                senders.append(sender)
                for _ in 0..<2 { #expect(sender.send(Array("ping".utf8), to: destination)) }
            }
        }
        usleep(50_000)
        var socketOfClient: [UInt32: Int] = [:]
        var total = 0
        for (index, socket) in sockets.enumerated() {
            for source in drainSources(socket) {
                total += 1
                if let previous = socketOfClient[source.ipv4] {
                    #expect(previous == index, "client \(source) split across sockets")
                }
                socketOfClient[source.ipv4] = index
                // The program's rule, exactly: source address modulo the group size, in bind order.
                #expect(Int(source.ipv4 % UInt32(group)) == index)
            }
        }
        #expect(total == 8 * 3 * 2)
        #expect(Set(socketOfClient.values).count == group, "eight clients should reach all four sockets")
    }
}

@Suite struct FallbackPathTests {
    @Test func sendBatchDeliversEveryDatagramInOrderAndFlushesWhenFull() throws {
        let receiver = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        let sender = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        let sends = DatagramSendBatch(capacity: 4)
        for i in 0..<10 {
            #expect(sends.append(Array("message \(i)".utf8), to: receiver.localAddress, on: sender) == 0)
        }
        #expect(!sends.isEmpty)  // 8 went out when the batch filled, 2 wait for the flush
        #expect(sends.flush(on: sender) == 0)
        #expect(sends.isEmpty)
        let readiness = try ReadinessPoll([receiver])
        #expect(readiness.wait(timeoutMilliseconds: 1_000) == 1)
        let batch = DatagramBatch(capacity: 16, bufferSize: 256)
        var texts: [String] = []
        while batch.receive(from: receiver) > 0 {
            for i in 0..<batch.count { batch.withDatagram(i) { bytes, _ in texts.append(bytes.string(bytes.all)) } }
        }
        #expect(texts == (0..<10).map { "message \($0)" })
    }

    @Test func readinessTimesOutWhenNothingArrives() throws {
        let socket = try UDPSocket(binding: EndpointAddress.parse("127.0.0.1", port: 0)!, reusePort: false)
        #expect(try ReadinessPoll([socket]).wait(timeoutMilliseconds: 50) == 0)
    }
}
