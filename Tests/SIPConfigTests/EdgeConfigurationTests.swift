import SIPBytes
import SIPConfig
import SIPParsing
import SIPProxyCore
import SIPSecurity
import SIPSettings
import Testing

@Suite struct EdgeConfigurationTests {
    @Test func embeddedDefaultsAreTheDocumentedOnes() {
        let defaults = EdgeConfiguration.defaults()
        #expect(defaults.listen == EndpointAddress.parse("127.0.0.1", port: 5060))
        #expect(defaults.upstreams == [UpstreamTarget(EndpointAddress.parse("127.0.0.1", port: 5070)!)])
        #expect(defaults.upstreamHealth == UpstreamHealthSettings())
        #expect(defaults.upstreamHealth.intervalMilliseconds == 1_000)
        #expect(defaults.upstreamHealth.fall == 3)
        #expect(defaults.upstreamHealth.rise == 2)
        #expect(defaults.upstreamDNS.servers.isEmpty)
        #expect(defaults.upstreamDNS.minimumTTLSeconds == 5)
        #expect(defaults.upstreamDNS.maximumTTLSeconds == 3_600)
        #expect(defaults.advertise == nil)
        #expect(defaults.workers == 0)
        #expect(defaults.dataPath == .auto)
        #expect(defaults.recordRoute)
        #expect(defaults.limits.scan.maxMessageSize == 65_536)
        #expect(defaults.limits.scan.maxHeaders == 128)
        #expect(defaults.uring.receiveBuffers == 128)
    }

    @Test func aFileOverridesOnlyWhatItNames() throws {
        let configuration = try EdgeConfiguration.parse(yaml: """
            listen: udp:[::1]:5080
            upstreams: [sip:10.0.0.2:5060, "sip:[2001:db8::2]:5060"]
            workers: 3
            data_path: recvmmsg
            limits:
              max_headers: 64
            """, over: EdgeConfiguration.defaults())
        #expect(configuration.listen == EndpointAddress.parse("::1", port: 5080))
        #expect(configuration.upstreams.count == 2)
        #expect(configuration.workers == 3)
        #expect(configuration.dataPath == .recvmmsg)
        #expect(configuration.limits.scan.maxHeaders == 64)
        #expect(configuration.limits.scan.maxMessageSize == 65_536)
        #expect(configuration.recordRoute)
        #expect(configuration.resolvedWorkers(cores: 8) == 3)
    }

    @Test(arguments: [
        ("listen: 127.0.0.1:5060", "listen"),
        ("listen: udp:example.com:5060", "listen"),
        ("upstreams: [sip:127.0.0.1:0]", "upstreams[0]"),
        ("upstreams: [sip:127.0.0.1]", "upstreams[0]"),
        ("upstreams: [sip:core_1.example.com]", "upstreams[0]"),
        ("upstreams: [sip:core..example.com]", "upstreams[0]"),
        ("upstreams: [sip:-core.example.com:5060]", "upstreams[0]"),
        ("upstreams: [sip:10.0.0.300:5060]", "upstreams[0]"),
        ("upstreams: [tcp:10.0.0.3:5060]", "upstreams[0]"),
        ("upstreams:\n  - sip:10.0.0.2:5060\n  - {uri: sip:10.0.0.3:5060, weight: 0}", "upstreams[1].weight"),
        ("upstreams:\n  - sip:10.0.0.2:5060\n  - {uri: sip:10.0.0.3:5060, weight: -2}", "upstreams[1].weight"),
        ("upstreams:\n  - {uri: sip:10.0.0.3:5060, wieght: 2}", "upstreams[0].wieght"),
        ("upstreams:\n  - {weight: 2}", "upstreams[0].uri"),
        ("upstreams:\n  - {uri: sip:10.0.0.3:5060, priority: high}", "upstreams[0].priority"),
        ("upstream_health:\n  fall: 0", "upstream_health.fall"),
        ("upstream_health:\n  interval_ms: 5", "upstream_health.interval_ms"),
        ("upstream_dns:\n  servers: [dns.example.com:53]", "upstream_dns.servers[0]"),
        ("upstream_dns:\n  min_ttl_s: 60\n  max_ttl_s: 10", "upstream_dns.min_ttl_s"),
        ("upstreams: []", "upstreams"),
        ("upstreams: [sip:127.0.0.1:5060]", "upstreams"),
        ("workers: many", "workers"),
        ("workers: 1000", "workers"),
        ("data_path: dpdk", "data_path"),
        ("record_route: maybe", "record_route"),
        ("limits:\n  max_headers: 2", "limits.max_headers"),
        ("limits:\n  max_hedaers: 64", "limits.max_hedaers"),
        ("limtis:\n  max_headers: 64", "limtis"),
        ("uring:\n  receive_buffers: 100", "uring.receive_buffers"),
        ("limits:\n  max_message_size: 1024\n  max_line_length: 2048", "limits.max_line_length"),
        // A first ban longer than the cap: an old `ban_ms: 600000` is refused by name, not silently shortened.
        ("rate_limit:\n  ban_ms: 600000", "rate_limit.ban_ms"),
        ("rate_limit:\n  ban_ms: 10000\n  ban_max_ms: 5000", "rate_limit.ban_ms"),
        ("rate_limit:\n  ban_memory_s: 1000000", "rate_limit.ban_memory_s"),
        ("rate_limit:\n  ban_max_ms: -1", "rate_limit.ban_max_ms"),
        ("websocket:\n  listen: [http:127.0.0.1:8080]", "websocket.listen[0]"),
        ("websocket:\n  listen: [ws:example.com:8080]", "websocket.listen[0]"),
        ("websocket:\n  listen: [wss:127.0.0.1:8443]", "tls.certificate"),
        ("websocket:\n  listen: [ws:127.0.0.1:5060]", "websocket.listen[0]"),
        ("websocket:\n  listen: [ws:0.0.0.0:8080, ws:127.0.0.1:8080]", "websocket.listen[1]"),
        ("websocket:\n  paths: []", "websocket.paths"),
        ("websocket:\n  ping_interval_s: 0", "websocket.ping_interval_s"),
        ("websocket:\n  handshake_timeout_ms: 10", "websocket.handshake_timeout_ms"),
        ("upstream_transport: ws", "upstream_transport"),
        // Control characters spelled with YAML escapes (found by EdgeInputsFuzzer: such a prefix loaded, and the
        // file written from it did not read back).
        ("shared_state:\n  key_prefix: \"edge\\0x\"", "shared_state.key_prefix"),
        ("security:\n  blocked_user_agents: [\"bad\\Lagent\"]", "security.blocked_user_agents[0]"),
        ("tls:\n  certificate: \"/etc/a\\tb.pem\"", "tls.certificate"),
        ("handover:\n  drain_s: -1", "handover.drain_s"),
        ("tcp:\n  message_timeout_ms: 10", "tcp.message_timeout_ms"),
    ])
    func badValuesAreRefusedNamingTheirKey(_ yaml: String, _ keyPath: String) {
        #expect {
            _ = try EdgeConfiguration.parse(yaml: yaml, over: EdgeConfiguration.defaults())
        } throws: { error in
            (error as? ConfigError)?.keyPath == keyPath
        }
    }

    @Test func webSocketListenersAndTheirRulesRead() throws {
        #expect(!EdgeConfiguration.defaults().webSocket.isEnabled, "off by default")
        let configuration = try EdgeConfiguration.parse(yaml: """
            tls:
              certificate: /etc/sip-edge/cert.pem
              private_key: /etc/sip-edge/key.pem
            websocket:
              listen: [ws:0.0.0.0:8080, "wss:[::1]:8443"]
              paths: [/, /ws]
              allowed_origins: [https://app.example.com, "*.example.net"]
              handshake_timeout_ms: 2000
              ping_interval_s: 20
            """)
        #expect(configuration.webSocket.plain?.address == EndpointAddress.parse("0.0.0.0", port: 8_080))
        #expect(configuration.webSocket.secure?.address == EndpointAddress.parse("::1", port: 8_443))
        #expect(configuration.webSocket.handshake.paths == ["/", "/ws"])
        #expect(configuration.webSocket.handshake.allowedOrigins == ["https://app.example.com", "*.example.net"])
        #expect(configuration.webSocket.handshakeTimeoutMilliseconds == 2_000)
        #expect(configuration.webSocket.pingIntervalMilliseconds == 20_000)
        #expect(configuration.servesTLS, "wss needs the certificate loaded like tls.listen")
    }

    @Test func bansEscalateFromAShortFirstBanByDefaultAndTheirKeysRead() throws {
        let defaults = EdgeConfiguration.defaults()
        #expect(defaults.rateLimit.banMilliseconds == 5_000)
        #expect(defaults.rateLimit.banMemoryMilliseconds == 600_000)
        #expect(defaults.rateLimit.banMaxMilliseconds == 300_000)
        // ban_ms keeps its name and meaning of "how long a ban is", now the first step's length.
        let configuration = try EdgeConfiguration.parse(yaml: """
            rate_limit:
              ban_ms: 60000
              ban_memory_s: 3600
              ban_max_ms: 3600000
            """, over: defaults)
        #expect(configuration.rateLimit.banMilliseconds == 60_000)
        #expect(configuration.rateLimit.banMemoryMilliseconds == 3_600_000)
        #expect(configuration.rateLimit.banMaxMilliseconds == 3_600_000)
    }

    @Test func upstreamEntriesCarryWeightsPrioritiesAndDNSNames() throws {
        let configuration = try EdgeConfiguration.parse(yaml: """
            upstreams:
              - {uri: sip:10.0.0.2:5060, weight: 3}
              - uri: sip:Kamailio-B.example.internal:5080
                weight: 1
              - uri: sip:backup.example.internal
                priority: 1
              - "sip:[2001:db8::2]:5060"
              - sip:core.example.internal
            """, over: EdgeConfiguration.defaults())
        #expect(configuration.upstreams == [
            UpstreamTarget(EndpointAddress.parse("10.0.0.2", port: 5060)!, weight: 3),
            UpstreamTarget(.name("kamailio-b.example.internal", port: 5080)),
            UpstreamTarget(.name("backup.example.internal", port: nil), priority: 1),
            UpstreamTarget(EndpointAddress.parse("2001:db8::2", port: 5060)!),
            UpstreamTarget(.name("core.example.internal", port: nil)),
        ])
        // What `config --defaults` would print for them reads back to the same entries.
        let key = try #require(ConfigKey.keys.first { $0.path == "upstreams" })
        let again = try EdgeConfiguration.parse(yaml: "upstreams: \(key.yamlValue(configuration))\n")
        #expect(again.upstreams == configuration.upstreams)
    }

    @Test func brokenYAMLIsAClearError() {
        #expect(throws: ConfigError.self) {
            _ = try EdgeConfiguration.parse(yaml: "listen: [unclosed", over: nil)
        }
    }

    @Test func environmentOverridesTheFileAndNamesBadVariables() throws {
        var configuration = try EdgeConfiguration.parse(yaml: "workers: 3\nlog:\n  level: debug\n", over: EdgeConfiguration.defaults())
        #expect(configuration.logLevel == "debug")
        try configuration.applyEnvironment(["SIPEDGE_WORKERS": "5", "SIPEDGE_UPSTREAMS": "sip:10.0.0.2:5060, sip:10.0.0.3:5060",
                                            "SIPEDGE_ADMIN_LISTEN": "off", "SIPEDGE_DATA_PATH": "recvmmsg"])
        #expect(configuration.workers == 5)
        #expect(configuration.upstreams.count == 2)
        #expect(configuration.admin == nil)
        #expect(configuration.dataPath == .recvmmsg)
        #expect {
            try configuration.applyEnvironment(["SIPEDGE_WORKERS": "lots"])
        } throws: { ($0 as? ConfigError)?.keyPath == "SIPEDGE_WORKERS" }
        #expect {
            _ = try EdgeConfiguration.parse(yaml: "log:\n  level: chatty\n", over: EdgeConfiguration.defaults())
        } throws: { ($0 as? ConfigError)?.keyPath == "log.level" }
    }
}
