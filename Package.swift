// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "shm-harness",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "SharedMemoryKit", targets: ["SharedMemoryKit"]),
        .executable(name: "shm-harness", targets: ["shm-harness"]),
        .executable(name: "shmh-worker", targets: ["shmh-worker"]),
        .executable(name: "shm-harness-worker", targets: ["shm-harness-worker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .target(name: "CShmShim"),
        // libshmh, the C library of CHarness/ (also built there by its Makefile): one SHA-1 and one lock
        // protocol for both languages.
        .target(
            name: "CShmh",
            path: "CHarness",
            exclude: ["Makefile", "README.md", "examples", "scripts", "shmh.pc.in", "tests", "tools", "worker"],
            sources: ["src"],
            publicHeadersPath: "include",
            cSettings: [.define("_GNU_SOURCE"), .unsafeFlags(["-std=c11"])],
            linkerSettings: [.linkedLibrary("pthread"), .linkedLibrary("m")]
        ),
        // the runner's C worker, built with the package so `impl: c` never lacks it
        .executableTarget(
            name: "shmh-worker",
            dependencies: ["CShmh"],
            path: "CHarness/worker",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        // `shm-harness bench`'s C side: the raw-system-call floors, libshmh doing the same work, and the
        // per-thread allocation counter (it interposes malloc & co. in the executable that links it).
        .target(
            name: "CBench",
            dependencies: ["CShmh"],
            cSettings: [.define("_GNU_SOURCE")],
            linkerSettings: [.linkedLibrary("pthread")]
        ),
        .target(
            name: "SharedMemoryKit",
            dependencies: [
                "CShmShim",
                .product(name: "SystemPackage", package: "swift-system"),
                "CShmh",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: swiftSettings
        ),
        // The worker's side, without Foundation: the scenario model, the plan format, the step executor and
        // the worker process (a worker starts in about the time of the C worker).
        .target(
            name: "WorkerKit",
            dependencies: [
                "SharedMemoryKit", "CShmShim",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        // the lean Swift worker (`impl: swift` and `impl: exec`), built beside shm-harness like shmh-worker
        .executableTarget(
            name: "shm-harness-worker",
            dependencies: ["WorkerKit"],
            swiftSettings: swiftSettings,
            // The Swift runtime linked in: the dynamic loader has libc and libm to map, nothing else.
            linkerSettings: [.unsafeFlags(["-static-stdlib"])]
        ),
        .target(
            name: "ScenarioKit",
            dependencies: [
                "SharedMemoryKit", "WorkerKit",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(name: "JUnit", swiftSettings: swiftSettings),
        .target(
            name: "Harness",
            dependencies: [
                "SharedMemoryKit", "WorkerKit", "ScenarioKit", "JUnit", "CShmShim",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "shm-harness",
            dependencies: [
                "SharedMemoryKit", "ScenarioKit", "Harness", "JUnit", "shmh-worker", "shm-harness-worker", "CBench",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: swiftSettings
        ),
        // The README's library snippet, verbatim (a test checks that it is the README's and leaves nothing behind).
        .executableTarget(
            name: "readme-library",
            dependencies: ["SharedMemoryKit"],
            path: "Examples/readme-library",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "TestSupport",
            dependencies: ["Harness"],
            path: "Tests/TestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "SharedMemoryKitTests",
            dependencies: [
                "SharedMemoryKit", "TestSupport",
                "CShmShim", "CBench",
                "shm-harness", "readme-library",
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            exclude: ["Resources"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "HarnessTests",
            dependencies: ["Harness", "ScenarioKit", "JUnit", "SharedMemoryKit", "TestSupport", "shm-harness"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
    ]
)
