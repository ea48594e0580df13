import Foundation
import SystemPackage
import SharedMemoryKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Where a test's files live: memory (tmpfs) or a disk file system.
enum Medium: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case tmpfs, disk
    var testDescription: String { rawValue }

    /// A directory on this medium to make scratch directories in, or nil (with the reason in `unavailable`).
    var parent: String? {
        switch self {
        case .tmpfs: return (try? FileSystemType.of(path: "/dev/shm"))?.isTmpfs == true ? "/dev/shm" : nil
        case .disk:
            // /tmp may be tmpfs or overlay; take the first candidate statfs says is not memory.
            let candidates = ["/var/tmp", TestEnvironment.packageRoot + "/.build-files", "/tmp"]
            return candidates.first { path in
                guard let type = try? FileSystemType.of(path: path) else { return false }
                return !type.isMemoryBacked && access(path, W_OK) == 0
            }
        }
    }

    static var diskUnavailable: Bool { Medium.disk.parent == nil }
}

/// A private (0700) scratch directory, removed with everything in it when the object goes.
final class ScratchDirectory {
    let path: String

    init(on medium: Medium = .tmpfs, _ label: String = #function) throws {
        guard let parent = medium.parent else { throw TestFailure("no \(medium) directory on this machine") }
        let clean = label.filter { $0.isLetter || $0.isNumber }.prefix(20)
        var template = Array("\(parent)/shmh-\(clean)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw TestFailure("mkdtemp in \(parent): \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Names in the directory now.
    var entries: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }

    func file(_ name: String) -> String { path + "/" + name }
}

enum FileSharingHelpers {
    /// Fills a mapping with the pattern byte[p] = p % 251 (what `file-debug read-loop` checks).
    static func fillPattern(_ bytes: UnsafeMutableRawBufferPointer) {
        for i in 0..<bytes.count { bytes[i] = UInt8(i % 251) }
    }

    /// Runs `shm-harness file-debug ARGS`.
    static func helper(_ arguments: [String]) throws -> ChildProcess {
        try TestEnvironment.harness(["file-debug"] + arguments)
    }

    /// Reads lines until one starts with `prefix`; fails with everything seen (and stderr) otherwise.
    @discardableResult
    static func expectLine(
        _ child: ChildProcess, startingWith prefix: String, timeout: Double = 60
    ) throws -> String {
        var seen: [String] = []
        while let line = child.readLine(timeout: timeout) {
            if line.hasPrefix(prefix) { return line }
            seen.append(line)
        }
        throw TestFailure("no line starting with \(prefix); saw \(seen); stderr: \(child.standardError())")
    }

    /// `key=value` lines until `end`, as a dictionary.
    static func keyValues(_ child: ChildProcess, until last: String = "end") throws -> [String: String] {
        var values: [String: String] = [:]
        while let line = child.readLine(timeout: 60) {
            if line == last { return values }
            if let equals = line.firstIndex(of: "=") {
                values[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
        }
        throw TestFailure("no \(last) line; got \(values); stderr: \(child.standardError())")
    }

    /// Writes a line to stderr (exit tests report it).
    static func writeError(_ message: String) {
        let line = message + "\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    /// The descriptors open in this process now (names in /proc/self/fd).
    /// This process's open descriptors as "fd -> target", leaving out the ones the runtime opens lazily on its
    /// own (Dispatch's epoll and eventfd, timers) and the directory listing's own descriptor: they come and go
    /// with the test machinery, not with the code under test.
    static func openDescriptors() -> Set<String> {
        var result = Set<String>()
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? [] {
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { continue }
            if target.hasPrefix("anon_inode:[event") || target.hasPrefix("anon_inode:[timerfd") || target.hasPrefix("/proc/") { continue }
            result.insert("\(fd) -> \(target)")
        }
        return result
    }
}

extension SharedMemoryError {
    /// Runs `body` and returns the error it throws, or nil.
    /// Another error type is reported as `unknown` with the error in the detail.
    static func caught(_ body: () throws -> Void) -> SharedMemoryError? {
        do { try body() } catch let error as SharedMemoryError { return error } catch {
            return SharedMemoryError(.unknown, operation: "test", detail: "\(error)")
        }
        return nil
    }
}
