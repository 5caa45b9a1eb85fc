import Foundation
import Testing

/// What operators plug in: `/metrics` read by the reference Prometheus client's parser, the Grafana dashboard and
/// the alert rules naming only families a live edge exposes, and the rules passing promtool.
@Suite(.serialized) struct ObservabilityTests {
    /// One edge with an upstream that answers, after some OPTIONS through it; its scrape.
    final class Rig {
        let metrics: String
        let families: Set<String>

        init() throws {
            let base = ProcessHarness.portBase(.dashboard)
            let (edgePort, corePort, adminPort, uacPort) = (base, base + 1, base + 2, base + 3)
            let config = FileManager.default.temporaryDirectory.appendingPathComponent("observability-\(getpid()).yaml")
            try """
                listen: udp:127.0.0.1:\(edgePort)
                upstreams: [sip:127.0.0.1:\(corePort)]
                workers: 2
                admin:
                  listen: 127.0.0.1:\(adminPort)
                upstream_health:
                  interval_ms: 200
                """.write(to: config, atomically: true, encoding: .utf8)
            let core = try ProcessHarness.startOptionsCore(port: corePort, log: "observability-core.log")
            defer { ProcessHarness.stop(core) }
            let edge = try ProcessHarness.start(ProcessHarness.sipEdgeBinary.path, ["--config", config.path],
                                                log: "observability-edge.log")
            defer { ProcessHarness.stop(edge) }
            usleep(700_000)
            let status = try ProcessHarness.runOptions(to: edgePort, from: uacPort, count: 20, rate: 50, timeoutSeconds: 15,
                                                log: "observability-uac.log")
            #expect(status == 0)
            usleep(1_200_000)  // past one busy-ratio window and a publication
            metrics = try ProcessHarness.httpGet("http://127.0.0.1:\(adminPort)/metrics", log: "observability-metrics.log")
            families = Set(metrics.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("# TYPE ") else { return nil }
                return line.split(separator: " ").dropFirst(2).first.map(String.init)
            })
        }
    }

    let rig: Rig

    init() throws {
        rig = try Rig()
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test func theExpositionParsesWithThePrometheusClientAndKeepsItsConventions() throws {
        // Debian's interpreter, which python3-prometheus-client installs into (a pyenv python3 on PATH lacks it).
        let python = "/usr/bin/python3"
        try #require(FileManager.default.isExecutableFile(atPath: python), "Debian's python3 must be installed")
        let scrape = FileManager.default.temporaryDirectory.appendingPathComponent("observability-\(getpid()).prom")
        try rig.metrics.write(to: scrape, atomically: true, encoding: .utf8)
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = []
            for family in text_string_to_metric_families(open(sys.argv[1]).read()):
                out.append({"name": family.name, "type": family.type, "help": family.documentation,
                             "samples": [[s.name, s.labels, s.value] for s in family.samples]})
            print(json.dumps(out))
            """
        let status = try ProcessHarness.run(python, ["-c", script, scrape.path], timeout: 30, log: "observability-parse.log")
        let output = ProcessHarness.logContents("observability-parse.log")
        #expect(status == 0, "\(output.prefix(2_000))")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]])
        var types: [String: String] = [:]
        for family in parsed { types[family["name"] as! String] = family["type"] as? String }
        // Every family the text declares is read back with its type (the client names counters without _total).
        for line in rig.metrics.split(separator: "\n") where line.hasPrefix("# TYPE ") {
            let fields = line.split(separator: " ").map(String.init)
            let name = fields[2]
            let type = fields[3]
            let parsedName = type == "counter" && name.hasSuffix("_total") ? String(name.dropLast(6)) : name
            #expect(types[parsedName] == type, "\(name): \(types[parsedName] ?? "missing")")
            #expect(rig.metrics.contains("# HELP \(name) "), "\(name) has no HELP")
            if type == "counter" { #expect(name.hasSuffix("_total"), "counter \(name)") }
        }
        for family in parsed where family["type"] as? String == "histogram" {
            let samples = family["samples"] as! [[Any]]
            let buckets = samples.filter { ($0[0] as! String).hasSuffix("_bucket") }
            let count = samples.first { ($0[0] as! String).hasSuffix("_count") }
            #expect(!buckets.isEmpty && count != nil, "\(family["name"]!)")
            // Per label set (the upstream histogram has one per upstream): cumulative, ending at +Inf == _count.
            var bySeries: [String: [(Double, Double)]] = [:]
            for bucket in buckets {
                var labels = bucket[1] as! [String: String]
                let bound = labels.removeValue(forKey: "le") == "+Inf" ? Double.infinity
                    : Double((bucket[1] as! [String: String])["le"]!)!
                bySeries[labels.sorted { $0.key < $1.key }.description, default: []].append((bound, bucket[2] as! Double))
            }
            for (series, values) in bySeries {
                let sorted = values.sorted { $0.0 < $1.0 }
                #expect(sorted.last?.0 == .infinity, "\(series) ends at +Inf")
                #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0.1 <= $1.1 }, "\(series) cumulative")
            }
        }
        let messages = try #require(parsed.first { $0["name"] as? String == "sip_messages" })
        let options = (messages["samples"] as! [[Any]]).filter { ($0[1] as! [String: String])["method"] == "OPTIONS" }
        #expect(options.reduce(0) { $0 + ($1[2] as! Double) } >= 20, "the SIPp OPTIONS are counted")
    }

    /// Metric names in a PromQL expression: identifiers that are not functions, keywords, label names or
    /// matcher values.
    static func metricNames(in expression: String) -> Set<String> {
        var text = expression
        // Label matchers, grouping clauses, ranges and strings carry no metric names.
        for pattern in [#"\{[^}]*\}"#, #"(by|without)\s*\([^)]*\)"#, #"\[[^\]]*\]"#, #""[^"]*""#] {
            text = text.replacingOccurrences(of: pattern, with: " ", options: .regularExpression)
        }
        let keywords: Set<String> = ["sum", "rate", "irate", "increase", "histogram_quantile", "max", "min", "avg",
                                     "count", "clamp_min", "clamp_max", "by", "without", "and", "or", "unless",
                                     "on", "ignoring", "group_left", "group_right", "abs", "topk", "bottomk", "delta"]
        var names = Set<String>()
        let regex = try! NSRegularExpression(pattern: #"[a-zA-Z_:][a-zA-Z0-9_:]*"#)
        for match in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            let name = String(text[Range(match.range, in: text)!])
            if !keywords.contains(name) { names.insert(name) }
        }
        return names
    }

    /// A series name's family: histograms expose _bucket/_sum/_count.
    func family(of name: String) -> String {
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) && !rig.families.contains(name) {
            return String(name.dropLast(suffix.count))
        }
        return name
    }

    @Test func everyDashboardQueryNamesAFamilyTheEdgeExposes() throws {
        let data = try Data(contentsOf: Self.repository.appendingPathComponent("deploy/grafana/sip-edge.json"))
        let dashboard = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let panels = try #require(dashboard["panels"] as? [[String: Any]])
        #expect(panels.count >= 15)
        var missing = Set<String>()
        var expressions = 0
        for panel in panels {
            #expect(!((panel["title"] as? String) ?? "").isEmpty)
            for target in (panel["targets"] as? [[String: Any]]) ?? [] {
                guard let expression = target["expr"] as? String else { continue }
                expressions += 1
                for name in Self.metricNames(in: expression) where !rig.families.contains(family(of: name)) {
                    missing.insert(name)
                }
            }
        }
        #expect(expressions >= 20)
        #expect(missing.isEmpty, "dashboard names families /metrics lacks: \(missing.sorted())")
    }

    @Test func theAlertRulesPassPromtoolAndNameExposedFamilies() throws {
        let promtool = try #require(ProcessHarness.which("promtool"), "promtool (Debian prometheus) must be installed")
        let rules = Self.repository.appendingPathComponent("deploy/prometheus/alerts.yml")
        let status = try ProcessHarness.run(promtool, ["check", "rules", rules.path], timeout: 30, log: "observability-promtool.log")
        #expect(status == 0)
        #expect(ProcessHarness.logContents("observability-promtool.log").contains("SUCCESS"))
        let text = try String(contentsOf: rules, encoding: .utf8)
        var missing = Set<String>()
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("expr:") || (!trimmed.contains(":") && !trimmed.hasPrefix("#") && !trimmed.isEmpty
                                                 && !trimmed.hasPrefix("-")) else { continue }
            let expression = trimmed.hasPrefix("expr:") ? String(trimmed.dropFirst(5)) : trimmed
            for name in Self.metricNames(in: expression) where name != "up" && !rig.families.contains(family(of: name)) {
                missing.insert(name)
            }
        }
        #expect(missing.isEmpty, "alerts name families /metrics lacks: \(missing.sorted())")
        #expect(text.components(separatedBy: "- alert:").count - 1 >= 7)
    }
}
