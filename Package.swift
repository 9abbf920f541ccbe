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
        .library(name: "PipeHarness", targets: ["PipeHarness"]),
        .executable(name: "pipebench", targets: ["pipebench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
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
        .target(
            name: "PipeHarness",
            dependencies: [
                "PipeEngine", "CPipeSys", "CNuma",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .executableTarget(
            name: "pipebench",
            dependencies: [
                "PipeEngine", "PipeHarness",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Counts each thread's heap allocations in the test process (hot-path checks).
        .target(name: "CMallocCounter", path: "Tests/CMallocCounter"),
        .testTarget(name: "PipeEngineTests", dependencies: ["PipeEngine", "CPipeSys", "CMallocCounter"]),
        .testTarget(name: "PipeHarnessTests", dependencies: ["PipeHarness", "PipeEngine"]),
        .testTarget(name: "PipeBenchCLITests", dependencies: ["PipeHarness", "PipeEngine"]),
    ]
)
