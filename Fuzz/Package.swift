// swift-tools-version:6.1
// libFuzzer harnesses for the two parsers that read untrusted bytes: the notification body
// (JSONParser, ChangeNotificationCollection) and bridge.yaml (ConfigDocument, BridgeConfiguration).
// A package of its own so the main build never sees -sanitize=fuzzer. Build and run with
// scripts/fuzz; see Fuzz/README.md.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

// A path dependency is known by its folder's name (`main` here, something else in a CI clone).
let bridge = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "graph-bridge"

let package = Package(
    name: "graph-bridge-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "..")
    ],
    targets: [
        // The declaration of libFuzzer's driver (see the harnesses' entry points).
        .systemLibrary(name: "CLibFuzzer", path: "Sources/CLibFuzzer"),
        .executableTarget(
            name: "fuzz-notifications",
            dependencies: ["CLibFuzzer", .product(name: "BridgeCore", package: bridge)],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "fuzz-config",
            dependencies: [
                "CLibFuzzer",
                .product(name: "BridgeConfig", package: bridge),
                .product(name: "BridgeCore", package: bridge),
                .product(name: "BridgeSettings", package: bridge),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
