import SIPBytes
import SIPCapture
import SIPProxyCore
import SIPUring

/// One worker's HEP capture: every message it receives and sends (its own replies and probes included) encoded
/// as HEP v3 into a bounded queue, flushed to the collector once per loop turn. Refused messages carry the node
/// name `<node>-refused`, so Homer can show or hide them. Sampling is per Call-ID, so a dialog is captured whole
/// or not at all.
final class CaptureTap {
    private let settings: CaptureSettings
    private(set) var queue: CaptureQueue
    let link: CaptureLink
    private let authKey: [UInt8]
    private let nodeName: [UInt8]
    private let refusedNodeName: [UInt8]
    private let capturesReceived: Bool
    private let capturesSent: Bool
    /// Messages too large for HEP's 16-bit length, or with mismatched address families: not captured.
    private(set) var skipped = 0
    /// The worker's local addresses, the other end of each capture: public UDP, its upstream UDP socket, and the
    /// TCP and TLS listeners (a wildcard listen address is captured as such).
    let localAddresses: LocalAddresses

    struct LocalAddresses {
        var publicUDP: EndpointAddress
        var upstreamUDP: EndpointAddress
        var tcp: EndpointAddress
        var tls: EndpointAddress
        var ws: EndpointAddress
        var wss: EndpointAddress
    }

    init(settings: CaptureSettings, target: CaptureTarget, localAddresses: LocalAddresses) throws {
        self.settings = settings
        queue = CaptureQueue(capacityBytes: settings.queueBytes)
        link = try CaptureLink(target: target)
        authKey = Array((settings.password ?? "").utf8)
        nodeName = Array("sip-edge".utf8)
        refusedNodeName = Array("sip-edge-refused".utf8)
        capturesReceived = settings.include.contains(.received)
        capturesSent = settings.include.contains(.sent)
        self.localAddresses = localAddresses
    }

    var sent: Int { link.sent }
    var dropped: Int { queue.dropped + link.lost }

    /// The Call-ID of the message being handled (copied: the receive buffer is reused) and whether it is
    /// sampled; every send while it is handled (the forward, replies, CANCEL/ACK of its transaction) shares both,
    /// so no send needs its Call-ID looked up again.
    private var handledCallID: [UInt8] = []
    private var handledIsSampled = true
    private var handling = false

    /// A message is about to be handled (its Call-ID unknown until it parses).
    func begin() {
        handling = true
        handledCallID.removeAll(keepingCapacity: true)
        handledIsSampled = true
    }

    /// The message being handled parsed: its Call-ID decides its sampling and correlates its captures.
    func identify(_ bytes: PacketBytes, callID: ByteSpan) {
        handledCallID.removeAll(keepingCapacity: true)
        bytes.append(callID, to: &handledCallID)
        handledIsSampled = isSampled(handledCallID)
    }

    /// The message was handled: capture it, refused or not.
    func end(_ bytes: PacketBytes, from flow: Flow, isUpstream: Bool, refused: Bool,
             time: (seconds: UInt32, microseconds: UInt32)) {
        handling = false
        guard capturesReceived, handledIsSampled else { return }
        let local = localAddress(for: flow, isUpstream: isUpstream)
        append(bytes, callID: handledCallID, metadata: CaptureMetadata(
            source: flow.address, destination: local, ipProtocol: Self.ipProtocol(flow.transport),
            seconds: time.seconds, microseconds: time.microseconds), refused: refused)
    }

    /// A message the worker handed to the kernel (or a connection's queue) for `flow`.
    func sent(_ packet: PacketBytes, to flow: Flow, isUpstream: Bool) {
        guard capturesSent else { return }
        if !handling {
            // Sent on its own (a probe, a timer's retransmission or 408): find its Call-ID.
            handledCallID.removeAll(keepingCapacity: true)
            if let callID = CallIDLocator.find(in: packet) { packet.append(callID, to: &handledCallID) }
            handledIsSampled = isSampled(handledCallID)
        }
        guard handledIsSampled else { return }
        let time = WallClock.now()
        append(packet, callID: handledCallID, metadata: CaptureMetadata(
            source: localAddress(for: flow, isUpstream: isUpstream), destination: flow.address,
            ipProtocol: Self.ipProtocol(flow.transport), seconds: time.seconds, microseconds: time.microseconds),
            refused: false)
    }

    /// Sends the queue when it holds `flushBytes` or its oldest capture has waited `flush_ms`: fewer, larger
    /// writes (one collector wake-up per batch, not per message).
    func flushIfDue(now: UInt64) {
        guard !queue.isEmpty else { return }
        guard queue.bytes.count >= Self.flushBytes || now >= oldestQueuedAt + UInt64(settings.flushMilliseconds) else {
            return
        }
        link.flush(&queue, now: now)
        oldestQueuedAt = now
    }

    /// Sends what the link takes now, due or not (a worker stopping).
    func flush(now: UInt64) {
        link.flush(&queue, now: now)
    }

    /// When ``flushIfDue(now:)`` must run next (nil: nothing queued); the worker's idle wait ends by then.
    var nextFlush: UInt64? {
        queue.isEmpty ? nil : oldestQueuedAt + UInt64(settings.flushMilliseconds)
    }

    /// Enough bytes to be worth a write whatever their age.
    static let flushBytes = 32_768
    private var oldestQueuedAt: UInt64 = 0

    private func append(_ bytes: PacketBytes, callID: [UInt8], metadata: CaptureMetadata, refused: Bool) {
        if queue.isEmpty { oldestQueuedAt = MonotonicClock.milliseconds() }
        let node = refused ? refusedNodeName : nodeName
        let correlation = callID
        guard metadata.source.family == metadata.destination.family,
              let length = HEPEncoder.encodedLength(metadata: metadata, payloadLength: bytes.count,
                                                    correlationLength: correlation.count, authKeyLength: authKey.count,
                                                    nodeNameLength: node.count)
        else {
            skipped += 1
            return
        }
        queue.append(length: length) { out in
            HEPEncoder.encode(into: &out, metadata: metadata, payload: bytes, correlation: correlation,
                              authKey: authKey, nodeName: node, captureAgentID: UInt32(truncatingIfNeeded: settings.nodeID))
        }
    }

    /// Per Call-ID (FNV-1a), so every message of a dialog gets the same answer; messages without one are kept.
    private func isSampled(_ callID: [UInt8]) -> Bool {
        guard settings.samplePercent < 100, !callID.isEmpty else { return true }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in callID { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return Int(hash % 100) < settings.samplePercent
    }

    private func localAddress(for flow: Flow, isUpstream: Bool) -> EndpointAddress {
        switch flow.transport {
        case .udp: isUpstream ? localAddresses.upstreamUDP : localAddresses.publicUDP
        case .tcp: localAddresses.tcp
        case .tls: localAddresses.tls
        case .ws: localAddresses.ws
        case .wss: localAddresses.wss
        }
    }

    static func ipProtocol(_ transport: TransportKind) -> CaptureMetadata.IPProtocol {
        switch transport {
        case .udp: .udp
        case .tcp: .tcp
        case .tls, .wss: .tls
        case .ws: .tcp
        }
    }
}
