// swift-tools-version: 6.0
// paintsd: a plugin host for painting applications (daemon, client CLI and libraries).
import PackageDescription

let package = Package(
    name: "paintsd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "paintsd", targets: ["paintsd"]),
        .executable(name: "paintsctl", targets: ["paintsctl"]),
        .library(name: "PaintsClient", targets: ["PaintsClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // Thin system-library targets: one per C library, reached only from its Swift wrapper module.
        // libzmq without pkgConfig: its header and library sit in the default paths, and Debian's libzmq.pc pulls in
        // krb5-gssapi's `-isystem /usr/include/mit-krb5`, which SwiftPM drops with a "prohibited flag(s)" warning on
        // every build (apt: libzmq3-dev).
        .systemLibrary(name: "CZeroMQ"),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // oneDNN ships no pkg-config file in Debian; its header and library sit in the default paths.
        .systemLibrary(name: "CDNNL", providers: [.apt(["libdnnl-dev"])]),

        .target(name: "PaintsProtocol"),
        .target(name: "PaintsTransport", dependencies: ["CZeroMQ"]),
        .target(name: "PaintsRaster", dependencies: ["CPNG"]),
        // PaintsTensor's vector kernels in C (the compiler vectorises them; one build per x86 level, chosen at load).
        .target(name: "CTensorKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "PaintsTensor", dependencies: ["COpenBLAS", "CDNNL", "CTensorKernels"]),
        .target(name: "PaintsDiffusion", dependencies: ["PaintsTensor"]),
        .target(name: "PaintsTagger", dependencies: ["PaintsTensor", "PaintsDiffusion"]),
        .target(name: "PaintsEngine", dependencies: ["PaintsProtocol", "PaintsRaster", "PaintsTensor", "PaintsDiffusion", "PaintsTagger"]),
        .target(
            name: "PaintsDaemon",
            dependencies: [
                "PaintsProtocol", "PaintsTransport", "PaintsRaster", "PaintsTensor", "PaintsEngine",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(name: "PaintsClient", dependencies: ["PaintsProtocol", "PaintsTransport"]),
        .executableTarget(
            name: "paintsd",
            dependencies: [
                "PaintsDaemon", "PaintsEngine", "PaintsTensor", "PaintsDiffusion",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "paintsctl",
            dependencies: [
                "PaintsClient", "PaintsProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "paints-bench",
            dependencies: [
                "PaintsEngine", "PaintsRaster", "PaintsTensor", "PaintsDaemon", "PaintsClient",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/paints-bench"),

        // `make fuzz` (outside CI): a seeded random mutator over the safetensors reader, the model loaders, the PNG
        // decoder and the request header parser; its seed corpus is Tests/Fixtures/fuzz/.
        .executableTarget(
            name: "paints-fuzz",
            dependencies: ["PaintsTensor", "PaintsDiffusion", "PaintsTagger", "PaintsRaster", "PaintsProtocol"]),

        .executableTarget(
            name: "paints-bench-diffusion",
            dependencies: ["PaintsDiffusion", "PaintsTensor"],
            path: "Benchmarks/paints-bench-diffusion"),

        .target(
            name: "PaintsTestSupport",
            dependencies: [
                "PaintsDaemon", "PaintsClient", "PaintsEngine", "PaintsRaster", "PaintsProtocol", "PaintsTransport",
                "PaintsTensor", .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/PaintsTestSupport"),
        .testTarget(name: "PaintsProtocolTests", dependencies: ["PaintsProtocol", "PaintsTestSupport"]),
        .testTarget(name: "PaintsRasterTests", dependencies: ["PaintsRaster", "PaintsTestSupport"]),
        .testTarget(name: "PaintsTensorTests", dependencies: ["PaintsTensor", "PaintsTestSupport"]),
        .testTarget(name: "PaintsDiffusionTests", dependencies: ["PaintsDiffusion", "PaintsTensor", "PaintsTestSupport"]),
        .testTarget(name: "PaintsTaggerTests", dependencies: ["PaintsTagger", "PaintsDiffusion", "PaintsTensor", "PaintsTestSupport"]),
        .testTarget(name: "PaintsEngineTests", dependencies: ["PaintsEngine", "PaintsRaster", "PaintsTestSupport"]),
        .testTarget(
            name: "PaintsDaemonTests",
            dependencies: ["PaintsDaemon", "PaintsClient", "PaintsTransport", "PaintsTensor", "PaintsDiffusion", "PaintsTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
