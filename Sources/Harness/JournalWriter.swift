import Foundation
import ScenarioKit
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// Writes a run's journal (docs/journal.md): what the run is about to make, before it makes it, so that a run
/// that dies is cleaned up by the next run or by `shm-harness clean --stale`. Isolated testcase processes append
/// to the same file (`SHM_HARNESS_JOURNAL`); each record is one short `O_APPEND` write.
struct JournalWriter: Sendable {
    let path: String

    /// Starts the run's journal; nil (and a warning on stderr) when the runtime directory is unusable.
    static func start(token: String) -> JournalWriter? {
        do throws(SharedMemoryError) {
            _ = try JournalDirectory.prepare()
        } catch {
            FileHandle.standardError.write(Data("shm-harness: no run journal (\(error)); a crash of this run would leave objects for `clean --stale` to find by name only\n".utf8))
            return nil
        }
        let writer = JournalWriter(path: JournalDirectory.path(forToken: token))
        let pid = getpid()
        let start = ProcessTable.startTime(of: pid).map(String.init) ?? "0"
        writer.append("\(RunJournal.header)\nrun \(token) pid=\(pid) start=\(start) time=\(Int(Date().timeIntervalSince1970))")
        return writer
    }

    /// The journal a parent run named for this (isolated) process, if any.
    static var inherited: JournalWriter? {
        ProcessInfo.processInfo.environment["SHM_HARNESS_JOURNAL"].flatMap { $0.isEmpty ? nil : JournalWriter(path: $0) }
    }

    /// Records the resources of a testcase before they are made.
    func record(_ resources: [Plan.Resource]) {
        var lines: [String] = []
        for resource in resources {
            if let key = resource.key { lines.append("segment " + RunJournal.encode(key)) }
            if let path = resource.path {
                lines.append((resource.kind == .file ? "file " : "lockfile ") + RunJournal.encode(resource.kind == .file ? path : path + ".lock"))
            }
        }
        if !lines.isEmpty { append(lines.joined(separator: "\n")) }
    }

    /// Records the run's private folder before it is made.
    func recordWorkDirectory(_ path: String) {
        append("workdir " + RunJournal.encode(path))
    }

    /// The run is over: when nothing the journal names is left, mark it ended and remove it. Otherwise it stays
    /// as it is (not ended, so stale once this process is gone): the next run, or `clean --stale` /
    /// `clean --run TOKEN`, removes what it names. Returns what was left.
    @discardableResult
    func finish(token: String) -> [String] {
        let left = leftovers()
        if !left.isEmpty {
            FileHandle.standardError.write(Data("shm-harness: the run left \(left.count) object(s) behind (\(left.prefix(4).joined(separator: ", "))\(left.count > 4 ? ", ..." : "")); its journal \(path) stays for the next run or `shm-harness clean --run \(token)`\n".utf8))
            return left
        }
        append("end \(token)")
        unlink(path)
        return []
    }

    /// What the journal names that still exists: segments (and their lock semaphores, key files, System V
    /// objects), files, lock files and folders.
    func leftovers() -> [String] {
        guard let journal = try? RunJournal.read(at: path) else { return [] }
        var keys = journal.segmentKeys
        keys += keys.map { $0.lockSemaphoreKey() }
        var found = IPCSnapshot.traces(of: keys, ftokKeys: Set(keys.compactMap { IPCSnapshot.ftokKey($0) }))
        for path in journal.files + journal.lockFiles + journal.workDirectories where access(path, F_OK) == 0 {
            found.append(path)
        }
        return Array(Set(found)).sorted()
    }

    private func append(_ text: String) {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var line = text + "\n"
        line.withUTF8 { buffer in _ = write(fd, buffer.baseAddress, buffer.count) }
    }
}
