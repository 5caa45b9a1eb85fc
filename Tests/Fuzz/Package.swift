// swift-tools-version:6.1
import PackageDescription

// libFuzzer harness for the C scanner and the Swift parser. A separate package (as Benchmarks/ is), so the main build
// never sees fuzzer flags. Build and run it with perf/fuzz.sh; the flags (-sanitize=fuzzer, address, coverage for
// the C scanner) are passed on the command line there, not here, so this manifest stays free of unsafe flags.
let package = Package(
    name: "SIPEdgeFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "SIPEdge", path: "../.."),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver for main.swift (header only; the runtime comes with
        // -sanitize=fuzzer).
        .target(name: "CFuzzerDriver"),
        // The entry both harnesses share (libFuzzer's driver with the harness's function).
        .target(name: "FuzzerEntry", dependencies: ["CFuzzerDriver"], swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "SIPParserFuzzer",
            dependencies: [
                "FuzzerEntry",
                .product(name: "SIPParsing", package: "SIPEdge"),
                .product(name: "SIPSecurity", package: "SIPEdge"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // What else comes from outside: flow tokens in Route/Via, admin HTTP requests, configuration files, TCP
        // streams. One target, the first input byte choosing the reader.
        .executableTarget(
            name: "EdgeInputsFuzzer",
            dependencies: [
                "FuzzerEntry",
                .product(name: "SIPParsing", package: "SIPEdge"),
                .product(name: "SIPProxyCore", package: "SIPEdge"),
                .product(name: "SIPAdmin", package: "SIPEdge"),
                .product(name: "SIPConfig", package: "SIPEdge"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        // TLS records as a client connection's bytes reach the server session: before a handshake, forged after
        // one, round-tripped and tampered with.
        .executableTarget(
            name: "TLSRecordFuzzer",
            dependencies: [
                "FuzzerEntry",
                .product(name: "SIPUring", package: "SIPEdge"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
