// swift-tools-version:6.1
import PackageDescription

// Benchmarks live in their own package (as in swift-nio), so the main build never resolves package-benchmark.
// Run from this directory: see README.md.
// A path dependency's package identity is the name of its directory ("main" in /work/main), not the manifest's
// `name`; derive it so the benchmarks work from any checkout or worktree.
let rootPackage = String(#filePath.split(separator: "/").dropLast(2).last!)

let package = Package(
    name: "SIPEdgeBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../"),
        // Only the MallocInterposer trait: the default traits pull in ordo-one/swift-runtime-interposer, which the
        // local package mirror does not have (toolchain.md §4).
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The plugin finds benchmark targets by path: the sources MUST live in Benchmarks/<Target>/.
        .executableTarget(
            name: "ParserBenchmarks",
            dependencies: [
                .product(name: "SIPParsing", package: rootPackage),
                .product(name: "SIPSecurity", package: rootPackage),
                .product(name: "SIPProxyCore", package: rootPackage),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/ParserBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
        .executableTarget(
            name: "TransactionBenchmarks",
            dependencies: [
                .product(name: "SIPTransactions", package: rootPackage),
                .product(name: "SIPParsing", package: rootPackage),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/TransactionBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v6)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]
        ),
    ]
)
