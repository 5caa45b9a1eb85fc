public import SIPBytes

/// One configured upstream entry, before DNS: a numeric address, or a name to resolve (RFC 3263 subset), with the
/// weight and priority the operator gave it. A numeric entry is one ``UpstreamSet/Member``; a name becomes as many
/// members as DNS returns addresses.
public struct UpstreamTarget: Sendable, Hashable, CustomStringConvertible {
    public enum Host: Sendable, Hashable {
        /// A numeric address with its port.
        case address(EndpointAddress)
        /// A DNS name. With a port: A/AAAA only. Without: SRV (`_sip._udp`, `_sip._tcp` or `_sips._tcp` by the
        /// upstream transport) first, whose priorities and weights then replace the entry's own, then A/AAAA of
        /// each SRV target; a name with no SRV records falls back to A/AAAA on port 5060 (5061 for TLS).
        case name(String, port: UInt16?)
    }

    public var host: Host
    /// Share within its priority group, relative to the other members' weights. 1...1000.
    public var weight: Int
    /// Lower goes first: a group is used only while every lower-numbered group is down. 0...65535.
    public var priority: Int

    public init(_ host: Host, weight: Int = 1, priority: Int = 0) {
        self.host = host
        self.weight = weight
        self.priority = priority
    }

    public init(_ address: EndpointAddress, weight: Int = 1, priority: Int = 0) {
        self.init(.address(address), weight: weight, priority: priority)
    }

    /// The numeric address, when the entry needs no DNS.
    public var address: EndpointAddress? {
        if case .address(let address) = host { return address }
        return nil
    }

    /// `sip:HOST:PORT` as configured (a name without a port stays without one).
    public var description: String {
        switch host {
        case .address(let address): "sip:\(address)"
        case .name(let name, let port?): "sip:\(name):\(port)"
        case .name(let name, nil): "sip:\(name)"
        }
    }
}
