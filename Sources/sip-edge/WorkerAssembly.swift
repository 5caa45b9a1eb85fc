import SIPBytes
import SIPConfig
import SIPParsing
import SIPProxyCore
import SIPSettings
import SIPTransport
import SIPUring

extension EdgeConfiguration {
    /// The worker settings this configuration implies, with the worker count resolved. `flowKey` signs flow
    /// tokens: the configured `flow.key`, or a random one the caller made (never a known default).
    /// `upstreamTLS`: the client context toward a TLS core, built by the caller (it reads files).
    func workerConfiguration(branchSecret: UInt64, cores: Int, flowKey: [UInt8],
                             upstreamTLS: TLSContext?) -> WorkerConfiguration {
        var uring = self.uring
        uring.receiveBufferSize = limits.scan.maxMessageSize
        var proxy = ProxyConfiguration(advertised: advertise ?? listen, upstreams: [], recordRoute: recordRoute,
                                       branchSecret: branchSecret, flowKey: flowKey, addPath: addPath)
        proxy.upstreams = UpstreamSet(numericUpstreams)
        proxy.unavailableRetryAfterSeconds = upstreamHealth.retryAfterSeconds
        proxy.upstreamTransport = upstreamTransport
        proxy.proxyRequirePassthrough = proxyRequirePassthrough
        proxy.internalHost = advertiseInternal
        proxy.advertisedTLSPort = tlsListen?.port
        proxy.advertisedWSPort = webSocket.plain?.address.port
        proxy.advertisedWSSPort = webSocket.secure?.address.port
        var worker = WorkerConfiguration(listen: listen, proxy: proxy, parseLimits: limits, dataPath: dataPath,
                                         workers: resolvedWorkers(cores: cores), uring: uring)
        worker.security = security
        worker.rateLimit = rateLimit
        worker.audit = audit
        worker.auditLinesPerSecond = auditLinesPerSecond
        worker.streams = streams
        worker.tlsListen = tlsListen
        worker.webSocket = webSocket
        worker.upstreamPool = upstreamPool
        worker.upstreamTLS = upstreamTLS
        worker.upstreamHealth = upstreamHealth
        worker.transactions = transactions
        worker.capture = capture
        return worker
    }

    /// The upstream entries that need no DNS, as set members; names join through the resolver.
    var numericUpstreams: [UpstreamSet.Member] {
        var members: [UpstreamSet.Member] = []
        for target in upstreams {
            guard let address = target.address else { continue }
            members.append(UpstreamSet.Member(address, weight: target.weight, priority: target.priority))
        }
        return members
    }
}
