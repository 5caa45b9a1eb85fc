// swift-tools-version:6.1
import PackageDescription

/// C targets are built with warnings as errors; the flags are "unsafe" only in SwiftPM's sense (this is the root
/// package, where they are allowed).
let strictC: [CSetting] = [
    .unsafeFlags(["-Wall", "-Wextra", "-Werror"]),
    .unsafeFlags(["-ffunction-sections"], .when(configuration: .release)),  // for hotFunctionOrder
]

/// jemalloc is the process allocator, except in sanitizer builds (`scripts/test-sanitizers.sh` sets
/// SIPEDGE_SANITIZER): ASan and TSan bring their own allocator, and memory jemalloc handed out and the sanitizer
/// frees (or the reverse) is reported as a bad free.
let processAllocator: [LinkerSetting] = Context.environment["SIPEDGE_SANITIZER"] == nil ? [.linkedLibrary("jemalloc")] : []

/// Release builds link the functions a forwarded message runs next to each other, hottest first
/// (perf/hot-functions.order, written by perf/hot-functions.sh): at moderate rates the worker wakes per datagram with
/// cold caches and TLBs, and the ~140 hot functions were spread over 2.2 MB of text (issue #17, README "Session 15").
/// Every C and Swift function gets its own section in release builds for it; gold is named because the option is
/// gold's (lld's differs).
let hotFunctionOrder: [LinkerSetting] = [
    .unsafeFlags(["-use-ld=gold", "-Xlinker", "--section-ordering-file=\(Context.packageDirectory)/perf/hot-functions.order"],
                 .when(configuration: .release)),
]

let package = Package(
    name: "SIPEdge",
    products: [
        .executable(name: "sip-edge", targets: ["sip-edge"]),
        .library(name: "SIPParsing", targets: ["SIPParsing", "SIPBytes"]),
        .library(name: "SIPSecurity", targets: ["SIPSecurity"]),
        .library(name: "SIPTransactions", targets: ["SIPTransactions"]),
        // For the fuzz harnesses in Tests/Fuzz (a separate package): the flow-token decoder, the admin request
        // reader and the configuration loader.
        .library(name: "SIPProxyCore", targets: ["SIPProxyCore"]),
        .library(name: "SIPAdmin", targets: ["SIPAdmin"]),
        .library(name: "SIPConfig", targets: ["SIPConfig"]),
        // For TLSRecordFuzzer: the TLS session over memory BIOs.
        .library(name: "SIPUring", targets: ["SIPUring", "SIPSettings"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C: zero-copy span scanner (start line, headers, folding, header kinds), SIMD chosen at run time.
        .target(name: "CSIPScan", path: "CSources/CSIPScan", cSettings: strictC),

        // C: system-call glue: io_uring (liburing), batched datagram receive and send, socket set-up.
        .target(
            name: "CSIPUring", path: "CSources/CSIPUring", cSettings: strictC,
            linkerSettings: [.linkedLibrary("uring")]
        ),

        // C: OpenSSL behind a small surface (flow-token MAC; TLS sessions over memory BIOs).
        .target(
            name: "CSIPTLS", path: "CSources/CSIPTLS", cSettings: strictC,
            linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]
        ),

        // C: c-ares behind a synchronous surface (SRV and A/AAAA lookups with TTLs) for the upstream resolver.
        .target(
            name: "CSIPDNS", path: "CSources/CSIPDNS", cSettings: strictC,
            linkerSettings: [.linkedLibrary("cares")]
        ),

        // Unsafe fence A: borrowed packet bytes, spans, the scanner and MAC calls. With SIPUring, the only Swift
        // targets allowed to touch Unsafe* APIs, OpaquePointer and pointer-taking C calls (scripts/lint.sh).
        .target(name: "SIPBytes", dependencies: ["CSIPScan", "CSIPTLS"]),

        // Option values of the lower targets (data path, io_uring sizes, stream limits, TLS files): plain data, no
        // dependencies, so the configuration reader names them without depending on sockets and workers.
        .target(name: "SIPSettings"),

        // Message model and parser: safe Swift over SIPBytes.
        .target(name: "SIPParsing", dependencies: ["SIPBytes", "CSIPScan"]),

        // Edge policy: validation rules and rate limiting, pure values with the clock passed in.
        .target(name: "SIPSecurity", dependencies: ["SIPParsing", "SIPBytes"]),

        // Stateless proxy core: pure routing decisions and message edits, no I/O.
        .target(name: "SIPProxyCore", dependencies: ["SIPParsing", "SIPBytes"]),

        // Transaction layer (RFC 3261 §17): per-worker transaction map and timer wheel, pure values, no I/O.
        .target(name: "SIPTransactions", dependencies: ["SIPProxyCore", "SIPParsing", "SIPBytes"]),

        // HEP v3 capture: the encoder and the bounded per-worker queue, pure values, no I/O.
        .target(name: "SIPCapture", dependencies: ["SIPBytes"]),

        // Typed configuration: embedded defaults, YAML file, validation with key paths.
        .target(
            name: "SIPConfig",
            dependencies: [
                "SIPSettings", "SIPProxyCore", "SIPSecurity", "SIPParsing", "SIPBytes", "SIPCapture",
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // Side targets: counters published by workers and rendered for Prometheus; the admin HTTP server.
        // Unsafe fence C: the lock shared state uses (a pthread mutex ThreadSanitizer can see).
        .target(name: "SIPLocks"),
        .target(name: "SIPMetrics", dependencies: ["SIPLocks"]),
        .target(name: "SIPAdmin", dependencies: ["SIPMetrics", "SIPUring"]),

        // Unsafe fence B: sockets, the io_uring ring, TLS sessions, DNS lookups.
        .target(name: "SIPUring", dependencies: ["CSIPUring", "CSIPTLS", "CSIPDNS", "SIPBytes", "SIPSettings", "SIPCapture"]),

        // Workers: each owns its sockets, parser and proxy core; no locks on the hot path.
        .target(
            name: "SIPTransport",
            dependencies: [
                "SIPUring", "SIPSettings", "SIPTransactions", "SIPProxyCore", "SIPSecurity", "SIPMetrics", "SIPParsing",
                "SIPBytes", "SIPCapture", "SIPLocks",
            ]
        ),

        // Bans shared between edges through Redis: one client thread per process, at the side of the workers.
        .target(name: "SIPSharedState", dependencies: ["SIPTransport", "SIPSecurity", "SIPUring", "SIPBytes"]),

        .executableTarget(
            name: "sip-edge",
            dependencies: [
                "SIPParsing",
                "SIPProxyCore",
                "SIPTransport",
                "SIPConfig",
                "SIPSettings",
                "SIPUring",
                "SIPSecurity",
                "SIPAdmin",
                "SIPMetrics",
                "SIPCapture",
                "SIPSharedState",
                "SIPLocks",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            // jemalloc is the process allocator: every Swift and C allocation goes through it (toolchain.md §2).
            linkerSettings: processAllocator + hotFunctionOrder
        ),

        // Test support: runs a program with io_uring_setup refused by seccomp, like a container profile.
        .executableTarget(name: "deny-io-uring", path: "Tests/Support/DenyIOURing", cSettings: strictC),
        // Test support shared by the suites: a throwaway PKI, a blocking loopback stream client.
        .target(name: "SIPTestSupport", path: "Tests/Support/SIPTestSupport"),
        // Real peers (SIPp, Kamailio, openssl, dnsmasq) on 127.0.0.1 against the built sip-edge binary.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "sip-edge", "deny-io-uring", "SIPTransport", "SIPProxyCore", "SIPUring", "SIPBytes", "SIPTestSupport",
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "SIPConfigTests", dependencies: ["SIPConfig", "SIPSettings", "SIPParsing", "SIPProxyCore", "SIPSecurity", "SIPBytes"]),
        .testTarget(name: "SIPSharedStateTests", dependencies: ["SIPSharedState", "SIPSecurity", "SIPTransport"]),
        .testTarget(name: "SIPCaptureTests", dependencies: ["SIPCapture", "SIPBytes", "SIPTestSupport"]),
        .testTarget(name: "SIPAdminTests", dependencies: ["SIPAdmin", "SIPMetrics"]),
        .testTarget(name: "SIPSecurityTests", dependencies: ["SIPSecurity", "SIPParsing", "SIPBytes"]),
        .testTarget(
            name: "SIPTransportTests",
            dependencies: ["SIPTransport", "SIPSettings", "SIPSecurity", "SIPProxyCore", "SIPParsing", "SIPUring", "SIPBytes", "SIPMetrics",
                           "SIPCapture", "SIPTestSupport"]
        ),
        .testTarget(name: "SIPUringTests", dependencies: ["SIPUring", "SIPSettings", "SIPBytes", "SIPTestSupport"]),
        .testTarget(name: "SIPTransactionsTests", dependencies: ["SIPTransactions", "SIPProxyCore", "SIPParsing", "SIPBytes",
                                                              "SIPTestSupport"]),
        .testTarget(name: "SIPProxyCoreTests", dependencies: ["SIPProxyCore", "SIPParsing", "SIPBytes"]),
        .testTarget(name: "CSIPScanTests", dependencies: ["CSIPScan", "SIPBytes", "SIPTestSupport"]),
        .testTarget(
            name: "SIPParsingTests",
            dependencies: ["SIPParsing", "SIPBytes", "SIPTestSupport"],
            resources: [.copy("Corpus")]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.swiftLanguageMode(.v6))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    // A plain import is internal: only `public import` lets a module's types into this one's public API.
    settings.append(.enableUpcomingFeature("InternalImportsByDefault"))
    if target.type != .test {
        // Release builds skip the runtime exclusivity check (swift_beginAccess on every class-property access): it
        // was 15% of the instructions per proxied message (callgrind, issue #17). Debug builds, hence every test
        // and sanitizer run, keep it, so a conflicting access is still caught there.
        // Each function in its own section: see hotFunctionOrder.
        settings.append(.unsafeFlags(["-enforce-exclusivity=unchecked", "-Xfrontend", "-function-sections"],
                                     .when(configuration: .release)))
    }
    target.swiftSettings = settings
}
