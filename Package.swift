// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .executable(name: "cairn-bench", targets: ["cairn-bench"]),
        .executable(name: "cairn-fuzz", targets: ["cairn-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        .systemLibrary(
            name: "CLibGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        // prctl(2), which Swift cannot call directly (it is variadic in C).
        .systemLibrary(name: "CSystemCalls"),
        .target(name: "CairnYAML", dependencies: ["CLibYAML"]),
        .target(name: "CairnCore", dependencies: ["CSystemCalls", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "CairnManifests", dependencies: ["CairnCore", "CairnYAML"]),
        .target(name: "CairnGit", dependencies: ["CairnCore", "CLibGit2", .product(name: "Crypto", package: "swift-crypto")]),
        // The reconcile core: owns the pass, the --wait loop, the worker loop and the daemon's
        // schedule; talks to git, the registry, trainers, artifacts and time through its ports.
        .target(name: "CairnReconcile", dependencies: ["CairnCore"]),
        // The git manifest source (a port adapter): a revision of a local or fetched repository.
        .target(name: "CairnSource", dependencies: ["CairnCore", "CairnManifests", "CairnGit", "CairnReconcile"]),
        // The registry: one store over a small SQL port, with a SQLite (GRDB) and a PostgreSQL (PostgresNIO) adapter.
        .target(
            name: "CairnStore",
            dependencies: [
                "CairnCore", "CairnReconcile", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .target(name: "CairnRender", dependencies: ["CairnCore"]),
        .target(
            name: "CairnTraining",
            dependencies: ["CairnCore", "CairnGit", "CairnReconcile", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // In-memory twins of every port and a manual clock, for fast lifecycle and scheduling tests.
        .target(name: "CairnTesting", dependencies: ["CairnCore", "CairnReconcile"]),
        .target(
            name: "CairnServer",
            dependencies: [
                "CairnCore", "CairnManifests", "CairnGit", "CairnReconcile", "CairnSource", "CairnStore", "CairnRender", "CairnTraining",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "CairnCore", "CairnManifests", "CairnGit", "CairnReconcile", "CairnSource", "CairnStore", "CairnRender", "CairnTraining",
                "CairnServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "cairn-bench", dependencies: [
            "CairnCore", "CairnGit", "CairnStore", "CairnYAML", "CairnManifests", "CairnSource", "CairnReconcile", "CairnTesting",
            .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The YAML loader + manifest decoder under libFuzzer (`make fuzz`); without it, a replayer of inputs.
        .executableTarget(name: "cairn-fuzz", dependencies: ["CairnCore", "CairnManifests"]),
        .testTarget(
            name: "CairnTests",
            dependencies: [
                "CairnCore", "CairnYAML", "CairnManifests", "CairnGit", "CairnReconcile", "CairnSource", "CairnStore", "CairnRender",
                "CairnTraining", "CairnTesting",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
