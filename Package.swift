// swift-tools-version:6.1
import PackageDescription

/// The release daemon's link: lld, packed relative relocations (DT_RELR, glibc 2.36+), and its
/// functions in the order a running bridge first touches them (`Linker/graph-bridge.order`, made by
/// `scripts/order-functions`), so an idle bridge keeps 6 MB of its 17 MB of code resident, not 9.
/// A stale order file only costs memory. docs/performance.md, "Issue 16, idle memory".
let daemonLinkerSettings: [LinkerSetting] = [
    .unsafeFlags(
        [
            "-use-ld=lld",
            "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
            "-Xlinker", "--symbol-ordering-file=\(Context.packageDirectory)/Linker/graph-bridge.order",
            "-Xlinker", "--no-warn-symbol-ordering",
        ],
        .when(configuration: .release)
    )
]

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "graph-bridge",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "graph-bridge", targets: ["graph-bridge"]),
        // For the fuzzing package in Fuzz/ (and anyone embedding the parsers).
        .library(name: "BridgeConfig", targets: ["BridgeConfig"]),
        .library(name: "BridgeCore", targets: ["BridgeCore"]),
        .library(name: "BridgeSettings", targets: ["BridgeSettings"]),
        // For the end-to-end tests only: LD_PRELOAD'ed into the real binary to make the state folder
        // unwritable on cue (Tests/FaultInjection). A product so that `swift build` makes the .so.
        .library(name: "FaultInjection", type: .dynamic, targets: ["FaultInjection"]),
    ],
    dependencies: [
        // `traits: []` keeps swift-configuration out and stops Hummingbird rebuilding between build/test/release.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        // Already in the graph through Hummingbird; named for NIOHTTPTypes (the listener's request deadline).
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // server.tls (HummingbirdTLS): a second BoringSSL build, about two minutes of a clean build.
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        // state.url: the PostgreSQL store (PostgresStore). A first build with it takes minutes.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: System libraries (headers only; typed shims for variadic C calls)
        .systemLibrary(
            name: "CCurl",
            path: "Sources/CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "CYAML",
            path: "Sources/CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),

        // MARK: Core modules
        // The vocabulary of outgoing transfers (requests, responses, TLS, SMTP envelopes, errors) and
        // the OutgoingTransport protocol. Plain Swift: no libcurl, no I/O.
        .target(
            name: "Transport",
            swiftSettings: swiftSettings
        ),
        // OutgoingTransport on libcurl's multi interface: the bridge's one HTTP(S) and SMTP client.
        .target(
            name: "CurlKit",
            dependencies: ["CCurl", "Transport"],
            swiftSettings: swiftSettings
        ),
        // bridge.yaml as positioned nodes, and a Decoder whose errors say FILE:LINE:COL.
        .target(
            name: "BridgeConfig",
            dependencies: ["CYAML"],
            swiftSettings: swiftSettings
        ),
        // What a sink plugin sees: the event, its JSON, Sink/SinkContext/SinkError, the transport
        // protocol and the config decoder. Every Sources/Sinks/* target builds on this alone.
        .target(
            name: "SinkAPI",
            dependencies: ["Transport", "BridgeConfig", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // Intake, routing, the delivery engine (dispatcher, workers, retry) and the store protocols.
        .target(
            name: "BridgeCore",
            dependencies: [
                "SinkAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // The bridge.yaml schema: sections, settings, routes, sink declarations, checks. Built on
        // BridgeConfig's decoder; hands the engine plain values (Route, RetryPolicy, ConfiguredSink).
        .target(
            name: "BridgeSettings",
            dependencies: ["BridgeConfig", "BridgeCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GraphClient",
            dependencies: [
                "Transport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BridgeGraph",
            dependencies: [
                "BridgeCore",
                "BridgeSettings",
                "GraphClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "GraphSimulator",
            dependencies: [
                "CurlKit",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BridgeStore",
            dependencies: [
                "BridgeCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The same StateStore & SubscriptionStore in PostgreSQL (state.url): one database shared by replicas.
        .target(
            name: "PostgresStore",
            dependencies: [
                "BridgeCore",
                "BridgeSettings",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The same StateStore & SubscriptionStore in memory: for tests above the store and the contract suite.
        .target(
            name: "InMemoryStore",
            dependencies: ["BridgeCore"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "BridgeServer",
            dependencies: [
                "BridgeCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .target(
            name: "BridgeTemplates",
            dependencies: ["SinkAPI", .product(name: "Mustache", package: "swift-mustache")],
            swiftSettings: swiftSettings
        ),

        // MARK: Sink plugins: one target each, depending only on the sink API (and templates)
        .target(
            name: "StdoutSink",
            dependencies: ["SinkAPI"],
            path: "Sources/Sinks/Stdout",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "FileSink",
            dependencies: ["SinkAPI"],
            path: "Sources/Sinks/File",
            swiftSettings: swiftSettings
        ),

        .target(
            name: "WebhookSink",
            dependencies: [
                "SinkAPI", "BridgeTemplates",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Sinks/Webhook",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "SMTPSink",
            dependencies: [
                "SinkAPI", "BridgeTemplates",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/Sinks/SMTP",
            swiftSettings: swiftSettings
        ),

        .target(
            name: "ExecSink",
            dependencies: [
                "SinkAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Sources/Sinks/Exec",
            swiftSettings: swiftSettings
        ),

        // MARK: Composition root and executable
        .target(
            name: "BridgeApp",
            dependencies: [
                "BridgeConfig",
                "BridgeCore",
                "BridgeSettings",
                "BridgeStore",
                "PostgresStore",
                "BridgeServer",
                "BridgeGraph",
                "GraphClient",
                "GraphSimulator",
                "CurlKit",
                "StdoutSink",
                "FileSink",
                "WebhookSink",
                "SMTPSink",
                "ExecSink",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "graph-bridge",
            dependencies: [
                "BridgeApp",
                "BridgeConfig",
                "BridgeCore",
                "BridgeSettings",
                "BridgeServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            linkerSettings: daemonLinkerSettings
        ),

        // MARK: Benchmark support
        .executableTarget(
            name: "bench-ceiling",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "bench-curl",
            dependencies: ["CurlKit"],
            swiftSettings: swiftSettings
        ),

        // MARK: Package plugins
        .plugin(
            name: "CheckConfig",
            capability: .command(
                intent: .custom(verb: "check-config", description: "Validate bridge.example.yaml and the given files with graph-bridge check")
            ),
            path: "Plugins/CheckConfig"
        ),

        // MARK: Tests
        .testTarget(name: "BridgeConfigTests", dependencies: ["BridgeConfig", "SinkAPI", "TestSupport"], swiftSettings: swiftSettings),
        // What the test targets share: temporary folders, the one polling wait, the loopback
        // receivers and servers (HTTP, SMTP, PostgreSQL), raw connections, throwaway certificates.
        .target(
            name: "TestSupport",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(name: "TestSupportTests", dependencies: ["TestSupport"], swiftSettings: swiftSettings),
        // C, never linked into anything: the end-to-end tests preload it into the child bridge.
        .target(name: "FaultInjection", path: "Tests/FaultInjection", linkerSettings: [.linkedLibrary("dl")]),
        .testTarget(name: "TransportTests", dependencies: ["Transport"], swiftSettings: swiftSettings),
        .testTarget(name: "CurlKitTests", dependencies: ["CurlKit", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SinkAPITests", dependencies: ["SinkAPI"], swiftSettings: swiftSettings),
        .testTarget(
            name: "BridgeCoreTests",
            dependencies: ["BridgeCore", "BridgeStore", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BridgeSettingsTests",
            dependencies: ["BridgeSettings", "BridgeCore", "BridgeConfig", "TestSupport"],
            swiftSettings: swiftSettings
        ),
        // One store contract, run against every StateStore implementation (StoreKind).
        .testTarget(
            name: "StoreContractTests",
            dependencies: [
                "BridgeCore", "BridgeSettings", "BridgeStore", "InMemoryStore", "PostgresStore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BridgeServerTests",
            dependencies: [
                "BridgeServer", "BridgeCore", "BridgeStore", "CurlKit", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SinkTests",
            dependencies: [
                "StdoutSink", "FileSink", "SinkAPI", "BridgeSettings", "BridgeCore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BridgeTemplatesTests",
            dependencies: ["BridgeTemplates", "SinkAPI"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "WebhookSinkTests",
            dependencies: [
                "WebhookSink", "BridgeTemplates", "SinkAPI", "BridgeSettings", "BridgeCore", "CurlKit", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SMTPSinkTests",
            dependencies: [
                "SMTPSink", "BridgeTemplates", "SinkAPI", "BridgeSettings", "BridgeCore", "CurlKit", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ExecSinkTests",
            dependencies: [
                "ExecSink", "SinkAPI", "BridgeSettings", "BridgeCore", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GraphSimulatorTests",
            dependencies: [
                "GraphSimulator", "CurlKit", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BridgeGraphTests",
            dependencies: [
                "BridgeGraph", "GraphClient", "GraphSimulator", "BridgeCore", "BridgeSettings", "BridgeStore", "BridgeServer", "CurlKit", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "GraphClientTests",
            dependencies: [
                "GraphClient", "BridgeGraph", "Transport", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "BridgeAppTests",
            dependencies: [
                "BridgeApp", "BridgeConfig", "BridgeCore", "BridgeStore", "PostgresStore", "TestSupport", .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests",
            // BridgeStore: some tests prepare a state file through the store API (dead letters, stored subscriptions).
            // GraphSimulator: the metrics test runs Graph in-process to send lifecycle events and inject faults.
            dependencies: [
                "CurlKit", "TestSupport", "BridgeCore", "BridgeStore", "GraphSimulator", .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
