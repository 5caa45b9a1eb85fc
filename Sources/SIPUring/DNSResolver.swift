public import SIPBytes
import CSIPDNS

#if canImport(Glibc)
import Glibc
#endif

/// One SRV record (RFC 2782): where a service runs, in what order and share.
public struct DNSServiceRecord: Sendable, Equatable {
    public var priority: UInt16
    public var weight: UInt16
    public var port: UInt16
    /// Host name without the trailing dot; empty when the record is "." ("no such service here").
    public var target: String
    /// Seconds.
    public var ttl: UInt32

    public init(priority: UInt16, weight: UInt16, port: UInt16, target: String, ttl: UInt32) {
        self.priority = priority
        self.weight = weight
        self.port = port
        self.target = target
        self.ttl = ttl
    }
}

/// One A or AAAA record.
public struct DNSAddressRecord: Sendable, Equatable {
    /// Port 0: DNS says nothing about ports here.
    public var address: EndpointAddress
    /// Seconds.
    public var ttl: UInt32

    public init(address: EndpointAddress, ttl: UInt32) {
        self.address = address
        self.ttl = ttl
    }
}

/// Why a lookup gave no records. The first two are answers (the name has nothing, for now); the last two are not.
public enum DNSLookupError: Error, Equatable, CustomStringConvertible {
    /// NXDOMAIN: the name does not exist.
    case noSuchName
    /// The name exists but has no record of the type asked for.
    case noData
    /// No server answered within the timeout and tries.
    case timeout
    /// Anything else (SERVFAIL, REFUSED, unreachable server, malformed answer), with c-ares' or the system's words.
    case failure(String)

    public var description: String {
        switch self {
        case .noSuchName: "no such name"
        case .noData: "no records"
        case .timeout: "timeout"
        case .failure(let reason): "failure: \(reason)"
        }
    }

    /// True for the answers (no such name, no data), false when the lookup itself failed.
    public var isAnswer: Bool {
        switch self {
        case .noSuchName, .noData: true
        case .timeout, .failure: false
        }
    }
}

/// Blocking DNS lookups over a c-ares channel (CSIPDNS). One per resolver thread: a channel serves one thread at
/// a time, so the class is not Sendable. Names are looked up as given, without resolv.conf's search list:
/// configure upstreams by their full names.
public final class DNSResolver {
    /// The C handle (`struct csip_dns *`), owned: destroyed in deinit.
    private let handle: OpaquePointer
    /// Record buffers reused by every lookup; larger answers are cut to these counts.
    private var serviceBuffer: [csip_dns_service]
    private var ipv4Buffer: [csip_dns_address]
    private var ipv6Buffer: [csip_dns_address]

    /// The most records one lookup keeps, per record type.
    public static let recordLimit = 64

    /// - Parameters:
    ///   - servers: DNS servers to ask (port 0 means 53); empty asks the system's, from /etc/resolv.conf.
    ///   - timeoutMilliseconds: the first try's timeout; c-ares doubles it on each round over the servers.
    ///   - tries: rounds over the servers before a lookup times out.
    public init(servers: [EndpointAddress], timeoutMilliseconds: Int = 2_000, tries: Int = 2) throws(DNSLookupError) {
        guard timeoutMilliseconds > 0, timeoutMilliseconds <= Int(Int32.max), tries > 0, tries <= 100 else {
            throw .failure("timeout and tries must be positive")
        }
        let serverList = servers.map { server in
            var server = server
            if server.port == 0 { server.port = 53 }
            return server.description
        }.joined(separator: ",")
        var created: OpaquePointer?
        let code = csip_dns_create(&created, serverList, Int32(timeoutMilliseconds), Int32(tries))
        guard code == 0, let created else { throw .failure(Self.describe(detail: code)) }
        handle = created
        serviceBuffer = Array(repeating: csip_dns_service(), count: Self.recordLimit)
        ipv4Buffer = Array(repeating: csip_dns_address(), count: Self.recordLimit)
        ipv6Buffer = Array(repeating: csip_dns_address(), count: Self.recordLimit)
    }

    deinit {
        csip_dns_destroy(handle)
    }

    /// The SRV records of `name` (`_sip._udp.example.com`), in answer order.
    public func serviceRecords(_ name: String) throws(DNSLookupError) -> [DNSServiceRecord] {
        var outcome = csip_dns_outcome()
        let handle = handle
        let code = serviceBuffer.withUnsafeMutableBufferPointer { buffer in
            csip_dns_lookup_services(handle, name, buffer.baseAddress, UInt32(buffer.count), &outcome)
        }
        guard code == 0 else { throw .failure(Self.describe(detail: code)) }
        try Self.check(outcome)
        return serviceBuffer.prefix(Int(outcome.count)).map { record in
            DNSServiceRecord(priority: record.priority, weight: record.weight, port: record.port,
                             target: Self.string(fromTarget: record), ttl: record.ttl)
        }
    }

    /// The A and AAAA records of `name`, IPv4 first, each in answer order. Both are asked at once. An error comes
    /// only when neither gave an address: then a failed lookup wins over an answer (so the caller keeps what it
    /// had), and "no such name" over "no data". One family failing while the other answers yields the answer:
    /// some servers never answer AAAA, and that must not hide the A records.
    public func addresses(_ name: String) throws(DNSLookupError) -> [DNSAddressRecord] {
        var ipv4Outcome = csip_dns_outcome()
        var ipv6Outcome = csip_dns_outcome()
        let handle = handle
        let code = ipv4Buffer.withUnsafeMutableBufferPointer { ipv4 in
            ipv6Buffer.withUnsafeMutableBufferPointer { ipv6 in
                csip_dns_lookup_addresses(handle, name, ipv4.baseAddress, UInt32(ipv4.count), &ipv4Outcome,
                                          ipv6.baseAddress, UInt32(ipv6.count), &ipv6Outcome)
            }
        }
        guard code == 0 else { throw .failure(Self.describe(detail: code)) }
        let found = ipv4Buffer.prefix(Int(ipv4Outcome.count)) + ipv6Buffer.prefix(Int(ipv6Outcome.count))
        let records = found.map { record in
            DNSAddressRecord(address: EndpointAddress(family: record.family == 6 ? .ipv6 : .ipv4,
                                                      high: record.high, low: record.low, port: 0),
                             ttl: record.ttl)
        }
        guard records.isEmpty else { return records }
        let errors = [Self.error(of: ipv4Outcome), Self.error(of: ipv6Outcome)].compactMap { $0 }
        if let failed = errors.first(where: { !$0.isAnswer }) { throw failed }
        throw errors.contains(.noSuchName) ? .noSuchName : .noData
    }

    private static func check(_ outcome: csip_dns_outcome) throws(DNSLookupError) {
        if let error = error(of: outcome) { throw error }
    }

    private static func error(of outcome: csip_dns_outcome) -> DNSLookupError? {
        switch csip_dns_status(rawValue: UInt32(bitPattern: outcome.status)) {
        case CSIP_DNS_OK: outcome.count > 0 ? nil : .noData
        case CSIP_DNS_NO_SUCH_NAME: .noSuchName
        case CSIP_DNS_NO_DATA: .noData
        case CSIP_DNS_TIMEOUT: .timeout
        default: .failure(describe(detail: outcome.detail))
        }
    }

    /// A c-ares status code, or a negated errno, in words.
    private static func describe(detail: Int32) -> String {
        if detail < 0 { return String(cString: strerror(-detail)) }
        return String(cString: csip_dns_describe(detail))
    }

    /// The record's NUL-terminated target, a C array Swift sees as a tuple: read through its bytes.
    private static func string(fromTarget record: csip_dns_service) -> String {
        withUnsafeBytes(of: record.target) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
