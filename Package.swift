// swift-tools-version: 6.1
//
// PipeBench: a user-space model of FreeBSD's sys_pipe.c (PipeEngine), a multi-threaded harness
// that measures it beside the Linux kernel's own IPC (PipeHarness), and the `pipebench` CLI.
//
// The package-benchmark suites live in Benchmarks/ as a package of their own, so that building
// and testing this package never compiles the benchmark tool and its malloc interposer.

import PackageDescription

let package = Package(
    name: "PipeBench",
    products: [
        .library(name: "PipeEngine", targets: ["PipeEngine"]),
        .library(name: "PipeResults", targets: ["PipeResults"]),
        .library(name: "PipeHarness", targets: ["PipeHarness"]),
        .executable(name: "pipebench", targets: ["pipebench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        // FileDescriptor: the results writer's files and the harness's descriptors.
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        // `swift package generate-documentation`: the DocC catalogs of PipeEngine and PipeHarness.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // What Swift's Glibc module cannot reach without _GNU_SOURCE: futex, mlock2,
        // MADV_POPULATE_*, RLIMIT_MEMLOCK, sched_getcpu, CPU affinity, C11 atomics on a futex word.
        .target(name: "CPipeSys"),
        // libnuma, as a system library (apt: libnuma-dev).
        .systemLibrary(
            name: "CNuma",
            pkgConfig: "numa",
            providers: [.apt(["libnuma-dev"])]
        ),
        .target(
            name: "PipeEngine",
            dependencies: ["CPipeSys"],
            // Release builds skip the run-time exclusivity checks: on a 64-byte stream they
            // were 8% of the time (swift_beginAccess and its thread-local access set). Debug
            // builds, which the tests use, keep them.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        // The results files: the CSV schema and its reader and writer, export, comparison,
        // summaries and the statistics behind them. Knows the engine's tunables (their
        // columns) and nothing of how results are measured.
        .target(name: "PipeResults", dependencies: ["PipeEngine", .product(name: "SystemPackage", package: "swift-system")]),
        .target(
            name: "PipeHarness",
            dependencies: [
                "PipeEngine", "PipeResults", "CPipeSys", "CNuma",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "pipebench",
            dependencies: [
                "PipeEngine", "PipeResults", "PipeHarness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Counts each thread's heap allocations in the test process (hot-path checks).
        .target(name: "CMallocCounter", path: "Tests/CMallocCounter"),
        .testTarget(name: "PipeEngineTests", dependencies: ["PipeEngine", "CPipeSys", "CMallocCounter"]),
        .testTarget(name: "PipeHarnessTests", dependencies: ["PipeHarness", "PipeResults", "PipeEngine"]),
        .testTarget(name: "PipeBenchCLITests", dependencies: ["PipeHarness", "PipeResults", "PipeEngine"]),
    ]
)
