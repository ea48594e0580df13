import Foundation
@testable import SharedMemoryKit
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Paths and facts the tests need: the built `shm-harness` binary, the Qt peer, unique keys.
enum TestEnvironment {
    static var packageRoot: String { TestPaths.packageRoot }
    static var harness: String { TestPaths.harness }

    /// Runs the harness binary with `arguments`.
    static func harness(_ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess([harness] + arguments, environment: environment)
    }

    /// The venv python that has PySide6 (made by scripts/qt-venv.sh), if present.
    static let qtPython: String? = {
        if let path = ProcessInfo.processInfo.environment["SHM_HARNESS_QT_PYTHON"],
            FileManager.default.isExecutableFile(atPath: path)
        {
            return path
        }
        let path = packageRoot + "/.venv-qt/bin/python"
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }()

    static var qtPeerScript: String { packageRoot + "/Tests/QtPeer/qt_peer.py" }

    /// Why the Qt interop tests cannot run, or nil when they can.
    static var qtUnavailableReason: String? {
        qtPython == nil ? "no PySide6 virtual environment (run scripts/qt-venv.sh or the README's test command)" : nil
    }

    static let isRoot = geteuid() == 0

    /// Runs the harness as `nobody` (setpriv drops uid, gid and supplementary groups), with TMPDIR set to
    /// `sharedTempDirectory`, where nobody can make Qt's key files.
    static func harnessAsNobody(_ arguments: [String]) throws -> ChildProcess {
        try ChildProcess(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", harness] + arguments,
                         environment: ["TMPDIR": sharedTempDirectory])
    }

    /// A temp folder that another user can make key files in (mode 1777, as /tmp), for the tests that drop to
    /// nobody: TMPDIR itself may be 0755 or private. It is made under the first of TMPDIR, /tmp, /var/tmp that
    /// others can reach, and removed (if empty: a key file left there is a leak to see) when the tests end.
    static let sharedTempDirectory: String = {
        let candidates = [TempDirectory.qtTempPath(), "/tmp", "/var/tmp"]
        let base = candidates.first(where: reachableByOthers) ?? "/tmp"
        let path = "\(base)/shm-harness-tests-\(getpid())-shared"
        if mkdir(path, 0o700) == 0 || errno == EEXIST { chmod(path, 0o1777) }
        atexit { rmdir(TestEnvironment.sharedTempDirectory) }
        return path
    }()

    /// Every folder from / down to `path` is searchable by others.
    static func reachableByOthers(_ path: String) -> Bool {
        var prefix = ""
        for part in ("/" + path).split(separator: "/") {
            prefix += "/" + part
            var info = stat()
            guard stat(prefix, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_mode & 0o001 != 0 else { return false }
        }
        return true
    }

    /// A fresh key of `type` whose System V key file lives in `sharedTempDirectory` (for keys nobody makes).
    static func uniqueSharedKey(_ type: NativeIPCKey.KeyType, _ label: String = #function) -> NativeIPCKey {
        .legacy(uniqueName(label), type: type, tempDirectory: sharedTempDirectory)
    }

    /// Why tests that drop to another user cannot run here, or nil when they can.
    static let secondUserUnavailableReason: String? = {
        guard isRoot else { return "needs root to drop to nobody" }
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { return "setpriv (util-linux) is missing" }
        guard let probe = try? harnessAsNobody(["--version"]), let status = try? probe.wait(timeout: 30),
            status.exitCode == 0
        else { return "nobody cannot run \(harness) (a directory on its path is not searchable by others)" }
        return nil
    }()

    nonisolated(unsafe) private static var counter = 0
    private static let counterLock = NSLock()

    /// A legacy key unique to this process and call.
    static func uniqueName(_ label: String = #function) -> String {
        counterLock.lock()
        counter += 1
        let n = counter
        counterLock.unlock()
        let clean = label.filter { $0.isLetter || $0.isNumber }
        return "tst\(getpid())n\(n)\(clean.prefix(24))"
    }

    /// A fresh key of `type` (legacy for System V and POSIX alike).
    static func uniqueKey(_ type: NativeIPCKey.KeyType, _ label: String = #function) -> NativeIPCKey {
        .legacy(uniqueName(label), type: type)
    }
}

/// The two Unix backends, as test arguments.
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case systemV, posix
    var type: NativeIPCKey.KeyType { self == .systemV ? .systemV : .posixRealtime }
    var cliType: String { self == .systemV ? "systemv" : "posix" }
    var testDescription: String { rawValue }
}
