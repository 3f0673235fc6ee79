// swift-tools-version:6.0
import PackageDescription

// The Makefile sets RAFT_OPTIMIZE_SIMULATION (for `make test` and every build the harness
// runs from) so that the protocol, the node machine, storage and the simulators are optimised
// inside the debug build: the thousand seeded schedules then take a minute, not several, and
// a scenario in the simulator runs faster than against processes. One setting for all, so
// that `make test` and `make test-cluster` share one build. Off by default, so that the
// package stays usable as a dependency.
let optimizeSimulation: [SwiftSetting] =
    Context.environment["RAFT_OPTIMIZE_SIMULATION"] != nil ? [.unsafeFlags(["-O"])] : []

// The layout of Sources/ is the architecture; see README.md.
// Raft is the protocol alone: no I/O, no clock, no threads, no dependencies.
let package = Package(
    name: "raft-testbed",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "Raft", targets: ["Raft"]),
        .library(name: "RaftSimulation", targets: ["RaftSimulation"]),
        .executable(name: "raft-sim", targets: ["RaftSim"]),
        .library(name: "RaftStorage", targets: ["RaftStorage"]),
        .executable(name: "raft-fixtures", targets: ["RaftFixtures"]),
        .executable(name: "raft-bench", targets: ["RaftBench"]),
        // Run by the crash tests of RaftStorageTests, which find it beside the test bundle.
        .executable(name: "storage-crash-child", targets: ["StorageCrashChild"]),
        .executable(name: "raft-node", targets: ["RaftNodeCLI"]),
        .executable(name: "harness", targets: ["HarnessCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
    ],
    targets: [
        .target(name: "Raft", swiftSettings: optimizeSimulation),
        .target(name: "RaftSimulation", dependencies: ["Raft", "RaftNodeMachine", "RaftNodeWire"], swiftSettings: optimizeSimulation),
        .executableTarget(
            name: "RaftSim",
            dependencies: [
                "RaftSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Files: log segments, term and vote, zlib snapshot files, goraft import.
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .target(name: "RaftStorage", dependencies: ["Raft", "CZlib"], swiftSettings: optimizeSimulation),
        .executableTarget(name: "RaftFixtures", dependencies: ["RaftStorage", "Raft"]),
        .executableTarget(name: "RaftBench", dependencies: ["RaftStorage", "Raft", "CZlib", "RaftNodeKit", "RaftNodeWire", "HarnessCheck"]),
        .executableTarget(name: "StorageCrashChild", dependencies: ["RaftStorage", "Raft"]),
        // Peer links over UNIX sockets and TCP: frames, handshake, per-peer queues, reconnects.
        .target(
            name: "RaftTransport",
            dependencies: [
                "Raft", "RaftNodeWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "RaftTransportTests",
            dependencies: [
                "RaftTransport", "Raft",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The node's outside as types: client requests and answers, status, events, settings,
        // parsers. No NIO: every side uses it (node, harness, checker, bench, tests).
        .target(name: "RaftNodeWire", dependencies: ["Raft"], swiftSettings: optimizeSimulation),
        // The node's decisions, pure: the core plus clients, deadlines, snapshot work, events.
        .target(name: "RaftNodeMachine", dependencies: ["Raft", "RaftNodeWire"], swiftSettings: optimizeSimulation),
        // What the two hosts of a node machine (process, simulator) share: event files, state files.
        .target(name: "RaftNodeHost", dependencies: ["Raft", "RaftNodeWire", "RaftNodeMachine", "RaftStorage"], swiftSettings: optimizeSimulation),
        // The process runtime: runs the node machine with storage, transport, clock, client socket.
        .target(
            name: "RaftNode",
            dependencies: [
                "Raft", "RaftStorage", "RaftTransport", "RaftNodeWire", "RaftNodeMachine", "RaftNodeHost",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // What raft-node and harness share on their command lines: one-line errors, exit 2.
        .target(name: "CommandLineSupport", dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "RaftNodeCLI",
            dependencies: ["RaftNode", "RaftNodeWire", "Raft", "CommandLineSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Start a raft-node process and talk to it: spawn, binaries, the client (no NIO).
        .target(name: "RaftNodeKit", dependencies: ["Raft", "RaftNodeWire"]),
        // Scenario language and engine (`harness`), the simulator's world, explore; no NIO.
        // The checker is HarnessCheck; the process world (link proxies) HarnessProcesses.
        .target(
            name: "Harness",
            dependencies: ["Raft", "RaftNodeWire", "RaftNodeMachine", "RaftNodeHost", "RaftStorage", "HarnessCheck"],
            swiftSettings: optimizeSimulation
        ),
        // The process world: raft-node children, link proxies over SwiftNIO.
        .target(
            name: "HarnessProcesses",
            dependencies: [
                "Harness", "RaftNodeKit", "Raft", "RaftNodeWire", "RaftStorage",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "HarnessCLI",
            dependencies: ["Harness", "HarnessProcesses", "HarnessCheck", "RaftNodeWire", "CommandLineSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .testTarget(name: "HarnessTests", dependencies: ["Harness", "HarnessProcesses", "HarnessCheck", "RaftNodeKit", "Raft", "RaftNodeWire", "RaftNodeMachine"]),
        // The checker of SPEC section 3 and `harness inspect`: reads a run's files only.
        .target(name: "HarnessCheck", dependencies: ["Raft", "RaftStorage", "RaftNodeWire", "RaftNodeMachine"], swiftSettings: optimizeSimulation),
        .testTarget(name: "HarnessCheckTests", dependencies: ["HarnessCheck", "Raft", "RaftStorage", "RaftNodeWire", "RaftNodeKit"]),
        .testTarget(name: "RaftStorageTests", dependencies: ["RaftStorage", "Raft"]),
        .testTarget(name: "RaftTests", dependencies: ["Raft"]),
        .testTarget(name: "RaftSimulationTests", dependencies: ["RaftSimulation", "Raft"]),
        .testTarget(name: "RaftNodeMachineTests", dependencies: ["RaftNodeMachine", "RaftNodeWire", "Raft"]),
        // Starts real raft-node processes (the built binary, found beside the test bundle).
        .testTarget(name: "RaftNodeTests", dependencies: ["RaftNode", "RaftNodeKit", "RaftNodeWire", "RaftNodeMachine", "RaftNodeHost", "RaftStorage", "Raft"]),
    ]
)
