import SIPBytes
import SIPProxyCore
@testable import SIPTransport

/// Records what the pipeline sends instead of sending it; flows named in `gone` are closed connections.
final class RecordingSink: FlowSink {
    var sent: [(text: String, flow: Flow)] = []
    var gone: Set<EndpointAddress> = []
    var pooledUpstreams: Set<EndpointAddress> = []

    func deliver(_ bytes: PacketBytes, to flow: Flow) -> Bool {
        guard !gone.contains(flow.address), bytes.count > 0 else { return false }
        sent.append((bytes.string(bytes.all), flow))
        return true
    }

    func isPooled(_ upstream: EndpointAddress) -> Bool { pooledUpstreams.contains(upstream) }

    var probeAnswers: [(callID: String, status: Int)] = []
    func probeAnswered(callID: String, status: Int) { probeAnswers.append((callID, status)) }

    var failedUpstreams: [EndpointAddress] = []
    func upstreamFailed(_ upstream: EndpointAddress) { failedUpstreams.append(upstream) }
}

