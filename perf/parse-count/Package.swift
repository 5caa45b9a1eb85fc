// swift-tools-version:6.1
// A loop of parses of the benchmark's simple INVITE, for instruction counts under callgrind (perf/parse-instructions.sh):
// steadier than wall-clock time on a shared machine.
import PackageDescription

let package = Package(
    name: "parse-count",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "SIPEdge", path: "../..")],
    targets: [
        .executableTarget(
            name: "parse-count",
            dependencies: [.product(name: "SIPParsing", package: "SIPEdge")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
