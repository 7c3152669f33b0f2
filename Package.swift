// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
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
        .target(name: "CairnYAML", dependencies: ["CLibYAML"]),
        .target(name: "CairnCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "CairnManifests", dependencies: ["CairnCore", "CairnYAML"]),
        .target(name: "CairnGit", dependencies: ["CairnCore", "CLibGit2"]),
        .target(name: "CairnStore", dependencies: ["CairnCore", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "CairnRender", dependencies: ["CairnCore"]),
        .target(
            name: "CairnTraining",
            dependencies: ["CairnCore", "CairnGit", "CairnStore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "CairnCore", "CairnManifests", "CairnGit", "CairnStore", "CairnRender", "CairnTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "CairnTests",
            dependencies: [
                "CairnCore", "CairnYAML", "CairnManifests", "CairnGit", "CairnStore", "CairnRender", "CairnTraining",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
