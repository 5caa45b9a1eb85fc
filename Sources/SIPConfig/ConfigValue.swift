import SIPBytes
import SIPCapture
import SIPParsing
import SIPProxyCore
import SIPSecurity
import SIPSettings
import Yams
import Foundation

/// How one kind of configuration value is read from YAML, written back, and described: the type half of a
/// ``ConfigKey``. Readers name the key path in every error.
public struct ConfigValue<Value: Equatable & Sendable>: Sendable {
    /// The allowed values in words (`1...65535`, `auto | io-uring | recvmmsg`), for the commented defaults.
    let allowed: String
    /// Reads `node` at `path` over the current value (a YAML null leaves a non-nullable value as it was).
    let decode: @Sendable (_ node: Node, _ path: String, _ current: Value) throws -> Value
    /// The value as YAML text that `decode` reads back.
    let encode: @Sendable (Value) -> String
    /// A valid value to start from where there is none (an empty list, a null).
    let sample: Value
    /// Another valid value: lets the tests change every key of the table in turn.
    let alternative: @Sendable (Value) -> Value
    /// An environment variable's text as YAML (a list variable is comma-separated).
    var environment: @Sendable (String) -> Node = { Node($0) }

    /// A value written as one scalar; `parse` gets the text and the key path.
    static func scalar(_ allowed: String, sample: Value, parse: @escaping @Sendable (String, String) throws -> Value,
                       encode: @escaping @Sendable (Value) -> String,
                       alternative: @escaping @Sendable (Value) -> Value) -> ConfigValue {
        ConfigValue(allowed: allowed, decode: { node, path, current in
            guard let text = try scalarText(node, path) else { return current }
            return try parse(text, path)
        }, encode: encode, sample: sample, alternative: alternative)
    }

    /// One of a fixed set of words.
    static func choice(_ cases: [(String, Value)]) -> ConfigValue {
        let names = cases.map(\.0)
        return scalar(names.joined(separator: " | "), sample: cases[0].1, parse: { text, path in
            guard let match = cases.first(where: { $0.0 == text }) else {
                throw ConfigError(path, "must be one of \(names.joined(separator: ", "))")
            }
            return match.1
        }, encode: { value in yamlScalar(cases.first { $0.1 == value }?.0 ?? "") }, alternative: { value in
            let index = cases.firstIndex { $0.1 == value } ?? 0
            return cases[(index + 1) % cases.count].1
        })
    }

    /// `value`, or `none` (YAML null, or a word such as `off`) for nil.
    static func optional<Wrapped>(_ wrapped: ConfigValue<Wrapped>, none: String = "null") -> ConfigValue
    where Value == Wrapped? {
        ConfigValue(allowed: "\(wrapped.allowed) | \(none)", decode: { node, path, current in
            if let scalar = node.scalar, isNull(scalar) || scalar.string == none { return nil }
            return try wrapped.decode(node, path, current ?? wrapped.sample)
        }, encode: { $0.map(wrapped.encode) ?? none }, sample: wrapped.sample,
        alternative: { $0 == nil ? wrapped.sample : nil }, environment: wrapped.environment)
    }

    /// A list of `item`s (a single scalar is a list of one); items are named `path[index]` in errors.
    static func list<Item>(_ item: ConfigValue<Item>, minimum: Int = 0) -> ConfigValue where Value == [Item] {
        ConfigValue(allowed: "[\(item.allowed), ...]", decode: { node, path, current in
            if let scalar = node.scalar, isNull(scalar) { return current }
            let nodes = node.scalar != nil ? [node] : node.sequence.map(Array.init)
            guard let nodes else { throw ConfigError(path, "expected a list") }
            guard nodes.count >= minimum else { throw ConfigError(path, "needs at least \(minimum) entry") }
            return try nodes.enumerated().map { index, element in
                let itemPath = "\(path)[\(index)]"
                if let scalar = element.scalar, isNull(scalar) { throw ConfigError(itemPath, "expected a value") }
                return try item.decode(element, itemPath, item.sample)
            }
        }, encode: { "[" + $0.map(item.encode).joined(separator: ", ") + "]" }, sample: [item.sample], alternative: { list in
            if list.isEmpty { return [item.sample] }
            return list.count > minimum ? Array(list.dropLast()) : [item.alternative(list[0])] + list.dropFirst()
        }, environment: { text in
            Node(text.split(separator: ",").map { Node($0.trimmingCharacters(in: .whitespaces)) })
        })
    }
}

extension ConfigValue where Value: FixedWidthInteger {
    /// A whole number in `range`, written in units of `unit` stored values (seconds stored as milliseconds: 1,000).
    static func integer(_ range: ClosedRange<Int>, unit: Int = 1, powerOfTwo: Bool = false) -> ConfigValue {
        scalar("\(range.lowerBound)...\(range.upperBound)\(powerOfTwo ? ", a power of two" : "")",
               sample: Value(range.lowerBound * unit), parse: { text, path in
            guard let value = Int(text) else { throw ConfigError(path, "expected an integer, got \(text)") }
            guard range.contains(value) else {
                throw ConfigError(path, "must be \(range.lowerBound)...\(range.upperBound), got \(value)")
            }
            guard !powerOfTwo || value & (value - 1) == 0 else { throw ConfigError(path, "must be a power of two") }
            return Value(value * unit)
        }, encode: { "\(Int($0) / unit)" }, alternative: { stored in
            let value = Int(stored) / unit
            let next = powerOfTwo ? (value * 2 <= range.upperBound ? value * 2 : value / 2)
                : (value < range.upperBound ? value + 1 : value - 1)
            return Value(next * unit)
        })
    }
}

extension ConfigValue where Value == Bool {
    static let bool = scalar("true | false", sample: true, parse: { text, path in
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw ConfigError(path, "expected true or false, got \(text)")
        }
    }, encode: { "\($0)" }, alternative: { !$0 })
}

extension ConfigValue where Value == String {
    /// Free text, at least `minimumLength` characters.
    static func text(minimumLength: Int = 0) -> ConfigValue {
        scalar(minimumLength > 0 ? "text, \(minimumLength)+ characters" : "text", sample: "sample-text-0123456789",
               parse: { text, path in
            guard text.utf8.count >= minimumLength else {
                throw ConfigError(path, "must be at least \(minimumLength) characters")
            }
            return text
        }, encode: yamlScalar, alternative: { $0 + "-changed" })
    }

    static let absolutePath = scalar("/absolute/path", sample: "/etc/sip-edge/sample.pem", parse: { text, path in
        guard text.hasPrefix("/") else { throw ConfigError(path, "must be an absolute path") }
        return text
    }, encode: yamlScalar, alternative: { $0 + ".new" })
}

extension ConfigValue where Value == EndpointAddress {
    /// `scheme:HOST:PORT` (just `HOST:PORT` without a scheme), numeric host.
    static func endpoint(_ scheme: String?) -> ConfigValue {
        let prefix = scheme.map { "\($0):" } ?? ""
        return scalar("\(prefix)HOST:PORT", sample: EndpointAddress.parse("192.0.2.1", port: 5060)!, parse: { text, path in
            try EdgeConfiguration.endpoint(text, scheme: scheme, path: path)
        }, encode: { yamlScalar(prefix + $0.description) }, alternative: { address in
            var moved = address
            moved.port = address.port == UInt16.max ? address.port - 1 : address.port + 1
            return moved
        })
    }

    /// A numeric host without a port.
    static let host = scalar("HOST", sample: EndpointAddress.parse("192.0.2.2", port: 0)!, parse: { text, path in
        guard let address = EndpointAddress.parse(text, port: 0) else {
            throw ConfigError(path, "must be a numeric IPv4 or IPv6 address, got \(text)")
        }
        return address
    }, encode: { address in
        var bytes: [UInt8] = []
        address.appendHost(to: &bytes)
        return yamlScalar(String(decoding: bytes, as: UTF8.self))
    }, alternative: { $0 == EndpointAddress.parse("192.0.2.2", port: 0)! ? EndpointAddress.parse("192.0.2.3", port: 0)!
        : EndpointAddress.parse("192.0.2.2", port: 0)! })
}

extension ConfigValue where Value == AddressPrefix {
    static let prefix = scalar("ADDRESS/BITS", sample: AddressPrefix("192.0.2.0/24")!, parse: { text, path in
        guard let prefix = AddressPrefix(text) else {
            throw ConfigError(path, "expected an address or CIDR prefix, got \(text)")
        }
        return prefix
    }, encode: { yamlScalar($0.description) }, alternative: { _ in AddressPrefix("198.51.100.0/24")! })
}

extension ConfigValue where Value == AuditDestination {
    static let audit = scalar("stderr | off | /absolute/path", sample: .standardError, parse: { text, path in
        switch text {
        case "stderr": return .standardError
        case "off": return .off
        case _ where text.hasPrefix("/"): return .file(text)
        default: throw ConfigError(path, "must be stderr, off or an absolute path")
        }
    }, encode: { destination in
        switch destination {
        case .standardError: "stderr"
        case .off: "off"
        case .file(let path): yamlScalar(path)
        }
    }, alternative: { $0 == .off ? .standardError : .off })
}

extension ConfigValue where Value == [SecurityRule: RuleAction] {
    /// Per rule, what it does; rules named in the file replace those entries, the others stay.
    static let ruleActions = ConfigValue(allowed: "RULE: reject | drop | allow", decode: { node, path, current in
        if let scalar = node.scalar, isNull(scalar) { return current }
        let actions = try Mapping(node, path: path)
        var merged = current
        for (name, value) in actions.pairs {
            guard let rule = SecurityRule(rawValue: name) else {
                throw ConfigError(actions.keyPath(name),
                                  "unknown rule (known: \(SecurityRule.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let text = value.scalar?.string, let action = RuleAction(rawValue: text) else {
                throw ConfigError(actions.keyPath(name), "must be reject, drop or allow")
            }
            merged[rule] = action
        }
        return merged
    }, encode: { actions in
        "{" + SecurityRule.allCases.compactMap { rule in actions[rule].map { "\(rule.rawValue): \($0.rawValue)" } }
            .joined(separator: ", ") + "}"
    }, sample: [:], alternative: { actions in
        var changed = actions
        changed[.blockedUserAgent] = actions[.blockedUserAgent] == .drop ? .reject : .drop
        return changed
    })
}

extension ConfigValue where Value == HeaderKind {
    /// A header name the edge knows (the scanner's table: full or compact form, any case), written back as the
    /// canonical name in lower case. A name outside the table is an error: the validator matches kinds, and a
    /// name it cannot classify would be a rule that silently never fires.
    static let headerName = scalar("header name", sample: .subject, parse: { text, path in
        let code = MessageScanner.classifyHeader(Array(text.trimmingCharacters(in: .whitespaces).utf8))
        guard code != HeaderKind.other.code else {
            let known = (1..<MessageScanner.kindCount).compactMap { MessageScanner.canonicalName(ofKind: UInt16($0)) }
            throw ConfigError(path, "unknown header \(text) (known: \(known.map { $0.lowercased() }.joined(separator: ", ")))")
        }
        return HeaderKind(code: code)
    }, encode: { yamlScalar(($0.canonicalName ?? "other").lowercased()) },
    alternative: { $0 == .subject ? .organization : .subject })
}

/// The text of a scalar node, nil for a YAML null; anything but a scalar is an error at `path`.
func scalarText(_ node: Node, _ path: String) throws -> String? {
    guard let scalar = node.scalar else { throw ConfigError(path, "expected a string") }
    // YAML's double-quoted escapes can spell control characters ("\0", "\e", "\L"): no path, name, prefix or
    // password has a use for them, they would reach logs and Redis keys, and a file holding them could not be
    // written out and read back (sip-edge config --defaults, the reload report).
    if let control = scalar.string.unicodeScalars.first(where: isControl) {
        throw ConfigError(path, "control characters are not allowed (U+\(String(control.value, radix: 16, uppercase: true)))")
    }
    return isNull(scalar) ? nil : scalar.string
}

/// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
private func isControl(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029
}

func isNull(_ scalar: Node.Scalar) -> Bool { scalar.string == "null" || scalar.string == "~" || scalar.string.isEmpty }

/// `text` as a YAML scalar: plain when that reads back as the same string, double-quoted otherwise.
func yamlScalar(_ text: String) -> String {
    let plain = text.first.map { $0.isLetter || $0.isNumber || $0 == "/" } ?? false && Double(text) == nil
        && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._/:-+@".contains($0)) }
        && !text.hasSuffix(":")  // `key_prefix: sipedge:` would read as a mapping
    guard !plain else { return text }
    return "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

extension ConfigValue where Value == UpstreamTarget {
    /// `sip:HOST[:PORT]` (HOST numeric, or a DNS name), or a mapping `{uri: ..., weight: N, priority: N}`.
    static let upstream = ConfigValue(allowed: "sip:HOST[:PORT] | {uri, weight, priority}", decode: { node, path, _ in
        if node.scalar != nil {
            guard let text = try scalarText(node, path) else { throw ConfigError(path, "expected sip:HOST[:PORT]") }
            return try EdgeConfiguration.upstreamTarget(text, path: path)
        }
        let fields = try Mapping(node, path: path)
        try fields.allowOnly(["uri", "weight", "priority"])
        guard let uriNode = fields.node("uri"), let text = try scalarText(uriNode, fields.keyPath("uri")) else {
            throw ConfigError(fields.keyPath("uri"), "required: sip:HOST[:PORT]")
        }
        var target = try EdgeConfiguration.upstreamTarget(text, path: fields.keyPath("uri"))
        if let weight = fields.node("weight") {
            target.weight = try ConfigValue<Int>.integer(1...1_000).decode(weight, fields.keyPath("weight"), 1)
        }
        if let priority = fields.node("priority") {
            target.priority = try ConfigValue<Int>.integer(0...65_535).decode(priority, fields.keyPath("priority"), 0)
        }
        return target
    }, encode: { target in
        target.weight == 1 && target.priority == 0 ? yamlScalar(target.description)
            : "{uri: \(yamlScalar(target.description)), weight: \(target.weight), priority: \(target.priority)}"
    }, sample: UpstreamTarget(EndpointAddress.parse("192.0.2.1", port: 5060)!), alternative: { target in
        var changed = target
        changed.weight = target.weight == 1 ? 2 : 1
        return changed
    })
}

extension ConfigValue where Value == CaptureTarget {
    /// `udp:HOST:PORT` or `tcp:HOST:PORT`, numeric host.
    static let captureTarget = scalar("udp:HOST:PORT | tcp:HOST:PORT",
                                      sample: CaptureTarget(transport: .udp, address: EndpointAddress.parse("192.0.2.1", port: 9060)!),
                                      parse: { text, path in
        let scheme = String(text.prefix { $0 != ":" })
        guard let transport = CaptureTarget.Transport(rawValue: scheme) else {
            throw ConfigError(path, "expected udp:HOST:PORT or tcp:HOST:PORT, got \(text)")
        }
        return CaptureTarget(transport: transport, address: try EdgeConfiguration.endpoint(text, scheme: scheme, path: path))
    }, encode: { yamlScalar($0.description) }, alternative: { target in
        CaptureTarget(transport: target.transport == .udp ? .tcp : .udp, address: target.address)
    })
}

extension ConfigValue where Value == RedisTarget {
    /// `redis://HOST:PORT[/DB]`, numeric host.
    static let redisTarget = scalar("redis://HOST:PORT/DB",
                                    sample: RedisTarget(address: EndpointAddress.parse("192.0.2.1", port: 6379)!, database: 0),
                                    parse: { text, path in try EdgeConfiguration.redisTarget(text, path: path) 
    }, encode: { yamlScalar($0.description) }, alternative: { target in
        RedisTarget(address: target.address, database: (target.database + 1) % 16)
    })
}

extension ConfigValue where Value == WebSocketListener {
    /// `ws:HOST:PORT` or `wss:HOST:PORT`, numeric host.
    static let webSocketListener = scalar("ws:HOST:PORT | wss:HOST:PORT",
                                          sample: WebSocketListener(isSecure: false,
                                                                    address: EndpointAddress.parse("192.0.2.1", port: 8080)!),
                                          parse: { text, path in
        let scheme = String(text.prefix { $0 != ":" })
        guard scheme == "ws" || scheme == "wss" else {
            throw ConfigError(path, "expected ws:HOST:PORT or wss:HOST:PORT, got \(text)")
        }
        return WebSocketListener(isSecure: scheme == "wss",
                                 address: try EdgeConfiguration.endpoint(text, scheme: scheme, path: path))
    }, encode: { yamlScalar($0.description) }, alternative: { listener in
        WebSocketListener(isSecure: !listener.isSecure, address: listener.address)
    })
}
