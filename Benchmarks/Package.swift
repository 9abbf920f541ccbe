// swift-tools-version: 6.1
//
// package-benchmark suites for PipeEngine, kept in a package of their own so that building
// and testing PipeBench never compiles the benchmark tool and its malloc interposer.
//   swift package --package-path Benchmarks benchmark
//   swift package --package-path Benchmarks benchmark thresholds check --metric mallocCountTotal
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which depends on where the repository was
// cloned: read it from this file's location rather than hard-coding it.
let rootPackage = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().lastPathComponent.lowercased()

let package = Package(
    name: "PipeBenchBenchmarks",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1",
                 traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "PipeEngineBenchmarks",
            dependencies: [
                .product(name: "PipeEngine", package: rootPackage),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/PipeEngineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
