import Foundation
import SIPTestSupport
import Testing

/// The container and Kubernetes files: real validators (hadolint, kubernetes-validate with the Kubernetes schemas,
/// through scripts/check-deploy.sh), what an operator relies on in the Deployment, and the configuration the
/// ConfigMap carries passing `sip-edge config --check`.
@Suite(.serialized) struct DeployManifestTests {
    static let kubernetes = ProcessHarness.repositoryRoot.appendingPathComponent("deploy/kubernetes")

    @Test func theContainerAndKubernetesFilesPassTheirValidators() throws {
        let status = try ProcessHarness.run(ProcessHarness.repositoryRoot.appendingPathComponent("scripts/check-deploy.sh").path,
                                            [], timeout: 600, log: "check-deploy.log")
        #expect(status == 0, "\(ProcessHarness.logContents("check-deploy.log").suffix(2_000))")
        #expect(ProcessHarness.logContents("check-deploy.log").contains("check-deploy: Dockerfile"))
    }

    @Test func theDeploymentRunsThreeHardenedReplicasProbedOnTheHealthEndpoints() throws {
        let deployment = try String(contentsOf: Self.kubernetes.appendingPathComponent("deployment.yaml"), encoding: .utf8)
        let lines = deployment.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.contains("replicas: 3"))
        #expect(lines.contains("httpGet: {path: /health/ready, port: metrics}"))
        #expect(lines.contains("httpGet: {path: /health/live, port: metrics}"))
        #expect(lines.contains("runAsNonRoot: true") && lines.contains("readOnlyRootFilesystem: true"))
        #expect(lines.contains("allowPrivilegeEscalation: false"))
        let budget = try String(contentsOf: Self.kubernetes.appendingPathComponent("poddisruptionbudget.yaml"), encoding: .utf8)
        #expect(budget.contains("minAvailable: 2"))
        let dockerfile = try String(contentsOf: ProcessHarness.repositoryRoot.appendingPathComponent("Dockerfile"), encoding: .utf8)
        #expect(dockerfile.contains("FROM debian:bookworm-slim") && dockerfile.contains("HEALTHCHECK"))
        #expect(dockerfile.contains("\nUSER 10001"))
    }

    /// The configuration in the ConfigMap is one sip-edge accepts, once its Secrets are mounted where it says.
    @Test func theConfigMapsConfigurationPassesTheEdgesOwnCheck() throws {
        let configMap = try String(contentsOf: Self.kubernetes.appendingPathComponent("configmap.yaml"), encoding: .utf8)
        let embedded = try #require(configMap.components(separatedBy: "sip-edge.yaml: |\n").last)
        var config = embedded.split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("    ") ? String($0.dropFirst(4)) : String($0) }.joined(separator: "\n")
        let certificates = try TestCertificates.make()
        let flowKey = FileManager.default.temporaryDirectory.appendingPathComponent("flow-\(getpid()).key")
        try "0123456789abcdef0123456789abcdef".write(to: flowKey, atomically: true, encoding: .utf8)
        config = config.replacingOccurrences(of: "/etc/sip-edge/tls/tls.crt", with: certificates.serverCertificate)
            .replacingOccurrences(of: "/etc/sip-edge/tls/tls.key", with: certificates.serverKey)
            .replacingOccurrences(of: "/etc/sip-edge/flow/flow.key", with: flowKey.path)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("configmap-\(getpid()).yaml")
        try config.write(to: file, atomically: true, encoding: .utf8)
        let status = try ProcessHarness.run(ProcessHarness.sipEdgeBinary.path, ["config", "--check", file.path],
                                            timeout: 30, log: "configmap-check.log")
        #expect(status == 0, "\(ProcessHarness.logContents("configmap-check.log"))")
    }
}
