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

    /// A message that arrived on `flow`; `callID` is the parser's span when it parsed.
    func received(_ bytes: PacketBytes, callID: ByteSpan?, from flow: Flow, isUpstream: Bool, refused: Bool,
                  time: (seconds: UInt32, microseconds: UInt32)) {
        guard capturesReceived, isSampled(bytes, callID) else { return }
        let local = localAddress(for: flow, isUpstream: isUpstream)
        append(bytes, callID: callID, metadata: CaptureMetadata(
            source: flow.address, destination: local, ipProtocol: Self.ipProtocol(flow.transport),
            seconds: time.seconds, microseconds: time.microseconds), refused: refused)
    }

    /// A message the worker handed to the kernel (or a connection's queue) for `flow`.
    func sent(_ bytes: [UInt8], to flow: Flow, isUpstream: Bool) {
        guard capturesSent else { return }
        bytes.withPacketBytes { packet in
            let callID = CallIDLocator.find(in: packet)
            guard isSampled(packet, callID) else { return }
            let time = WallClock.now()
            append(packet, callID: callID, metadata: CaptureMetadata(
                source: localAddress(for: flow, isUpstream: isUpstream), destination: flow.address,
                ipProtocol: Self.ipProtocol(flow.transport), seconds: time.seconds, microseconds: time.microseconds),
                refused: false)
        }
    }

    func flush(now: UInt64) {
        link.flush(&queue, now: now)
    }

    private func append(_ bytes: PacketBytes, callID: ByteSpan?, metadata: CaptureMetadata, refused: Bool) {
        let node = refused ? refusedNodeName : nodeName
        let correlation = callID ?? ByteSpan(offset: 0, length: 0)
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
    private func isSampled(_ bytes: PacketBytes, _ callID: ByteSpan?) -> Bool {
        guard settings.samplePercent < 100, let callID else { return true }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for index in callID.start..<callID.end {
            hash = (hash ^ UInt64(bytes[index])) &* 0x100_0000_01b3
        }
        return Int(hash % 100) < settings.samplePercent
    }

    private func localAddress(for flow: Flow, isUpstream: Bool) -> EndpointAddress {
        switch flow.transport {
        case .udp: isUpstream ? localAddresses.upstreamUDP : localAddresses.publicUDP
        case .tcp: localAddresses.tcp
        case .tls: localAddresses.tls
        }
    }

    static func ipProtocol(_ transport: TransportKind) -> CaptureMetadata.IPProtocol {
        switch transport {
        case .udp: .udp
        case .tcp: .tcp
        case .tls: .tls
        }
    }
}
