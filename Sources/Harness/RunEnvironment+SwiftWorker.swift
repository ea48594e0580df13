#if canImport(Glibc)
import Glibc
#endif

extension RunEnvironment {
    /// The lean Swift worker, `shm-harness-worker` (no Foundation: it starts in about the time of the C worker),
    /// if SwiftPM built it beside this binary; nil otherwise.
    static func findSwiftWorker(beside exe: String) -> String? {
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let path = String(exe[..<slash]) + "/shm-harness-worker"
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & S_IFMT == S_IFREG, access(path, X_OK) == 0 else { return nil }
        return path
    }

    /// How to start a Swift worker: the lean worker, else this binary's `worker` subcommand (same protocol).
    static func swiftWorkerCommand(_ swiftWorker: String?, harnessPath: String) -> [String] {
        swiftWorker.map { [$0] } ?? [harnessPath, "worker"]
    }

    /// How this run starts a Swift worker (`impl: swift`, and `impl: exec` with `--exec`).
    public var swiftWorkerCommand: [String] { Self.swiftWorkerCommand(swiftWorkerPath, harnessPath: harnessPath) }
}
