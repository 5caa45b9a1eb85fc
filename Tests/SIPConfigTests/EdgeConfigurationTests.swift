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
        #expect(defaults.upstreams == [EndpointAddress.parse("127.0.0.1", port: 5070)!])
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
    ])
    func badValuesAreRefusedNamingTheirKey(_ yaml: String, _ keyPath: String) {
        #expect {
            _ = try EdgeConfiguration.parse(yaml: yaml, over: EdgeConfiguration.defaults())
        } throws: { error in
            (error as? ConfigError)?.keyPath == keyPath
        }
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
