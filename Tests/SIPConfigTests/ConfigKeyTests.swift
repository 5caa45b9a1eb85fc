import SIPConfig
import Testing

/// The key table is the single source of the reader, the defaults, `config --defaults` and the reload report:
/// these tests walk it so a key that is read into one field but compared or printed from another fails here.
@Suite struct ConfigKeyTests {
    /// The cross-field rules need these before some keys can change (tls.listen needs a certificate, mutual TLS
    /// a CA, upstream_transport tls a core CA).
    static let companions = """
        tls:
          certificate: /etc/sip-edge/edge.pem
          private_key: /etc/sip-edge/edge.key
          ca: /etc/sip-edge/clients-ca.pem
        upstream_tls:
          ca: /etc/sip-edge/core-ca.pem
        """

    /// YAML setting `values` (dotted path, YAML text), grouped by section.
    static func yaml(_ values: [(path: String, value: String)]) -> String {
        var sections: [String: [String]] = [:]
        var order: [String] = []
        var lines: [String] = []
        for (path, value) in values {
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { lines.append("\(path): \(value)"); continue }
            if sections[parts[0]] == nil { order.append(parts[0]) }
            sections[parts[0], default: []].append("  \(parts[1]): \(value)")
        }
        for section in order { lines += ["\(section):"] + sections[section]! }
        return lines.joined(separator: "\n")
    }

    static func base() throws -> EdgeConfiguration { try EdgeConfiguration.parse(yaml: companions) }

    @Test func everyKeyChangedAloneIsReportedByItsPathInItsReloadClass() throws {
        let base = try Self.base()
        for key in ConfigKey.keys {
            let text = Self.yaml([(key.path, key.alternativeYAMLValue(base))])
            let next = try EdgeConfiguration.parse(yaml: text, over: base)
            let changes = base.changes(to: next)
            #expect(changes == (key.appliesOnReload ? ConfigurationChanges(applied: [key.path])
                                                    : ConfigurationChanges(needRestart: [key.path])), "\(text)")
        }
    }

    @Test func defaultsYAMLNamesEveryKeyAndReadsBackToTheDefaults() throws {
        let text = EdgeConfiguration.defaultsYAML
        for key in ConfigKey.keys {
            let leaf = key.path.split(separator: ".").last!
            let indent = key.path.contains(".") ? "  " : ""
            #expect(text.contains("\n\(indent)\(leaf): \(key.yamlValue(EdgeConfiguration.defaults()))"), "\(key.path)")
            #expect(text.contains(key.help), "\(key.path)")
        }
        // Over a configuration where every key differs, so a key missing from the text or read into the wrong
        // field leaves a difference behind.
        let defaults = EdgeConfiguration.defaults()
        let everythingChanged = try EdgeConfiguration.parse(
            yaml: Self.yaml(ConfigKey.keys.map { ($0.path, $0.alternativeYAMLValue(defaults)) }), over: defaults)
        let allChanges = defaults.changes(to: everythingChanged)
        #expect(allChanges.applied + allChanges.needRestart == ConfigKey.keys.filter(\.appliesOnReload).map(\.path)
                + ConfigKey.keys.filter { !$0.appliesOnReload }.map(\.path))
        #expect(try EdgeConfiguration.parse(yaml: text, over: everythingChanged) == EdgeConfiguration.defaults())
        #expect(try EdgeConfiguration.parse(yaml: text, over: nil) == EdgeConfiguration.defaults())
    }

    @Test func keyPathsAreUniqueAndAtMostOneSectionDeep() {
        let paths = ConfigKey.keys.map(\.path)
        #expect(Set(paths).count == paths.count)
        #expect(paths.allSatisfy { $0.split(separator: ".").count <= 2 })
    }

    @Test func anUnknownKeyIsRefusedAtEveryLevelNamingItAndTheKnownOnes() {
        let sections = Set(ConfigKey.keys.compactMap { $0.path.contains(".") ? String($0.path.split(separator: ".")[0]) : nil })
        for section in [nil] + sections.sorted() {
            let yaml = section.map { "\($0):\n  no_such_key: 1" } ?? "no_such_key: 1"
            let path = section.map { "\($0).no_such_key" } ?? "no_such_key"
            let known = ConfigKey.keys.first { section == nil ? !$0.path.contains(".") : $0.path.hasPrefix(section! + ".") }!
            #expect {
                _ = try EdgeConfiguration.parse(yaml: yaml)
            } throws: { error in
                guard let error = error as? ConfigError else { return false }
                return error.keyPath == path && error.reason.contains("unknown key")
                    && error.reason.contains(String(known.path.split(separator: ".").last!))
            }
        }
    }

    @Test(arguments: [
        ("tcp:\n  max_connections: 0", "tcp.max_connections"),
        ("tcp:\n  idle_timeout_s: 86401", "tcp.idle_timeout_s"),
        ("admin:\n  max_connections: 65536", "admin.max_connections"),
        ("admin:\n  request_timeout_ms: 99", "admin.request_timeout_ms"),
        ("rate_limit:\n  table_size: 63", "rate_limit.table_size"),
        ("uring:\n  entries: lots", "uring.entries"),
        ("tcp:\n  enabled: sometimes", "tcp.enabled"),
        ("upstream_transport: sctp", "upstream_transport"),
        ("tls:\n  min_version: \"1.1\"", "tls.min_version"),
        ("rate_limit:\n  action: allow", "rate_limit.action"),
        ("tls:\n  listen: udp:127.0.0.1:5061", "tls.listen"),
        ("admin:\n  listen: localhost:9090", "admin.listen"),
        ("advertise_internal: core.example.com", "advertise_internal"),
        ("tls:\n  certificate: edge.pem", "tls.certificate"),
        ("security:\n  audit_log: audit.log", "security.audit_log"),
        ("flow:\n  key: short", "flow.key"),
        ("rate_limit:\n  allow_list: [10.0.0.0/8, 10.0.0.0/33]", "rate_limit.allow_list[1]"),
        ("security:\n  actions:\n    sql_injection: maybe", "security.actions.sql_injection"),
        ("security:\n  actions:\n    no_such_rule: drop", "security.actions.no_such_rule"),
        ("security:\n  blocked_user_agents: {a: b}", "security.blocked_user_agents"),
        ("security:\n  no_space_before_colon: [via, x-not-known]", "security.no_space_before_colon[1]"),
        ("security:\n  no_space_before_colon_on_streams: [content-typo]", "security.no_space_before_colon_on_streams[0]"),
        ("tcp: 5", "tcp"),
    ])
    func aValueOutOfItsRangeOrTypeIsRefusedNamingItsKey(_ yaml: String, _ keyPath: String) {
        #expect {
            _ = try EdgeConfiguration.parse(yaml: yaml)
        } throws: { ($0 as? ConfigError)?.keyPath == keyPath }
    }

    @Test(arguments: [
        ("tcp:\n  max_connections: 100", "tcp.max_connections"),
        ("uring:\n  entries: 512", "uring.entries"),
        ("log:\n  level: debug", "log.level"),
        ("admin:\n  listen: \"off\"", "admin.listen"),
        ("upstream_health:\n  fall: 5", "upstream_health.fall"),
        ("upstream_dns:\n  servers: [127.0.0.1:5353]", "upstream_dns.servers"),
        ("upstream_pool:\n  connections: 4", "upstream_pool.connections"),
        ("security:\n  audit_log: \"off\"", "security.audit_log"),
    ])
    func aChangedRestartOnlyKeyIsNamedAsNeedingARestart(_ yaml: String, _ keyPath: String) throws {
        let running = EdgeConfiguration.defaults()
        #expect(running.changes(to: try EdgeConfiguration.parse(yaml: yaml)) == ConfigurationChanges(needRestart: [keyPath]))
    }

    @Test(arguments: [
        ("rate_limit:\n  window_ms: 2000", "rate_limit.window_ms"),
        ("security:\n  max_uri_length: 1024", "security.max_uri_length"),
        ("security:\n  no_space_before_colon: [content-length, Via, l]", "security.no_space_before_colon"),
        ("security:\n  no_space_before_colon_on_streams: []", "security.no_space_before_colon_on_streams"),
        ("security:\n  actions:\n    banned: reject", "security.actions"),
        ("tls:\n  certificate: /etc/sip-edge/renewed.pem", "tls.certificate"),
    ])
    func aChangedReloadableKeyIsReportedAsApplied(_ yaml: String, _ keyPath: String) throws {
        let running = EdgeConfiguration.defaults()
        #expect(running.changes(to: try EdgeConfiguration.parse(yaml: yaml)) == ConfigurationChanges(applied: [keyPath]))
    }

    @Test func severalChangesAreSplitAndNothingChangedIsEmpty() throws {
        let running = EdgeConfiguration.defaults()
        let next = try EdgeConfiguration.parse(yaml: "rate_limit:\n  ban_ms: 1000\ntcp:\n  max_send_queue: 8192\nworkers: 2")
        #expect(running.changes(to: next) == ConfigurationChanges(applied: ["rate_limit.ban_ms"],
                                                                 needRestart: ["workers", "tcp.max_send_queue"]))
        #expect(running.changes(to: running) == ConfigurationChanges())
    }

    @Test func newAdminKeysHaveTheirDefaultsAndReadFromTheFile() throws {
        let defaults = EdgeConfiguration.defaults()
        #expect(defaults.adminMaxConnections == 256)
        #expect(defaults.adminRequestTimeoutMilliseconds == 2_000)
        let configuration = try EdgeConfiguration.parse(yaml: "admin:\n  max_connections: 8\n  request_timeout_ms: 500")
        #expect(configuration.adminMaxConnections == 8)
        #expect(configuration.adminRequestTimeoutMilliseconds == 500)
    }
}
