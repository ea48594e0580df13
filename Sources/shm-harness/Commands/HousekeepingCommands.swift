import ArgumentParser
import Foundation
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// `shm-harness ls`: every shared-memory object of this user (or of all users) in one table, or JSON.
struct LsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List shared-memory objects: System V segments and semaphore sets, /dev/shm, Qt key files.",
        discussion: """
            Shows who owns and uses each object, marks those this library made and Qt-style ones, recovers Qt \
            legacy keys from run journals, and says which look stale (nobody attached, creator gone). The JSON \
            fields are described in docs/housekeeping.md.
            """
    )

    @Flag(help: "Print JSON for scripts (one object; fields in docs/housekeeping.md).")
    var json = false

    @Flag(help: "Every user's objects (default: those this user owns or created).")
    var all = false

    func run() throws {
        let inventory = Inventory.scan(allUsers: all)
        if json {
            let data = try JSONSerialization.data(
                withJSONObject: HousekeepingJSON.document(inventory), options: [.prettyPrinted, .sortedKeys])
            try data.withUnsafeBytes { try writeStandardOutput($0) }
            print("")
        } else {
            print(HousekeepingTable.render(inventory), terminator: "")
        }
        for warning in inventory.warnings { writeStandardError("shm-harness ls: \(warning)\n") }
    }
}

/// `shm-harness clean`: removes what it is asked to, only the caller's objects, never one in use.
struct CleanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clean",
        abstract: "Remove leftover shared-memory objects: stale ones, a dead run's, or one key's.",
        discussion: """
            Removes only objects this user owns (all, as root, with --any-owner), never one in use (attached, \
            mapped, open, locked or with a usage record), never through a symlink. Prints each removal and each \
            object it kept and why. Exit status 1 if a removal failed, or if --key / --run left something.
            """
    )

    @Flag(help: "Say what would be removed; remove nothing.")
    var dryRun = false

    @Flag(help: "Remove the objects of stale run journals, then those journals, and every Qt-style or library object that looks stale.")
    var stale = false

    @Option(name: .customLong("run"), help: "Remove what the journal of run TOKEN names (the run must be over).")
    var runToken: String?

    @Option(help: "A legacy key (as QSharedMemory(key) takes it): remove its segment, lock semaphore and key files when unused.")
    var key: String?

    @Option(help: "The backend of a legacy --key (default systemv, Qt's legacy default on Linux).")
    var type: BackendArgument?

    @Option(help: "A native key in Qt's string form (QNativeIpcKey::toString()), e.g. posix:/name.")
    var nativeKey: String?

    @Option(help: "With --stale: only objects whose path, key file, Qt name or legacy key contains TEXT (and only journals naming such objects).")
    var match: String?

    @Flag(help: "As root: also remove other users' objects.")
    var anyOwner = false

    @Flag(help: "With --native-key: accept a System V key file outside the temp folder and $XDG_RUNTIME_DIR.")
    var allowAnyPath = false

    func validate() throws {
        if !stale && runToken == nil && key == nil && nativeKey == nil {
            throw ValidationError("say what to clean: --stale, --run TOKEN, --key LEGACYKEY or --native-key STRING")
        }
        if key != nil && nativeKey != nil { throw ValidationError("give either --key or --native-key, not both") }
        if type != nil && key == nil { throw ValidationError("--type applies to --key only") }
        if let nativeKey, NativeIPCKey(string: nativeKey) == nil {
            throw ValidationError("--native-key '\(nativeKey)' is not a valid key string (expected e.g. posix:/name)")
        }
        if let runToken, !RunJournal.isValidToken(runToken) {
            throw ValidationError("--run '\(runToken)' is not a run token")
        }
        if anyOwner && geteuid() != 0 { throw ValidationError("--any-owner needs root") }
        if match != nil && !stale { throw ValidationError("--match applies to --stale only") }
        if match?.isEmpty == true { throw ValidationError("--match needs a non-empty text") }
    }

    func run() throws {
        let reaper = try Reaper(dryRun: dryRun, anyOwner: anyOwner) { event in
            print(event.description)
            fflush(nil)
        }
        var strict = false  // --key and --run: anything kept is a failure
        if key != nil || nativeKey != nil {
            strict = true
            let resolved: NativeIPCKey =
                nativeKey.flatMap { NativeIPCKey(string: $0) } ?? .legacy(key ?? "", type: (type ?? .systemv).keyType)
            if !reaper.clean(key: resolved, allowAnyPath: allowAnyPath) {
                throw CommandFailure(message: "clean: nothing found for \(resolved)")
            }
        }
        if let runToken {
            strict = true
            try reaper.clean(run: runToken)
        }
        if stale { reaper.cleanStale(matching: match) }
        if reaper.events.isEmpty && stale { print("nothing to clean") }
        var failed = 0
        var kept = 0
        for event in reaper.events {
            switch event.outcome {
            case .failed: failed += 1
            case .kept: kept += 1
            default: break
            }
        }
        if failed > 0 { throw CommandFailure(message: "\(failed) removals failed") }
        if strict && kept > 0 { throw CommandFailure(message: "\(kept) objects were kept") }
    }
}

/// The JSON of `ls --json` (docs/housekeeping.md lists every field).
enum HousekeepingJSON {
    static func document(_ inventory: Inventory) -> [String: Any] {
        [
            "format": "shm-harness-ls",
            "version": 1,
            "uid": Int(geteuid()),
            "all_users": inventory.allUsers,
            "objects": inventory.objects.map(object),
            "journals": inventory.journals.map(journal),
            "warnings": inventory.warnings,
        ]
    }

    static func object(_ o: IPCObject) -> [String: Any] {
        func value(_ v: (any Any)?) -> Any { v.map { $0 } ?? NSNull() }
        return [
            "kind": o.kind.rawValue,
            "id": value(o.id.map { Int($0) }),
            "key": value(o.ipcKey.map(hexKey)),
            "path": value(o.path),
            "owner_uid": Int(o.ownerUID),
            "owner": userName(o.ownerUID),
            "creator_uid": value(o.creatorUID.map { Int($0) }),
            "mode": String(format: "%04o", o.mode),
            "size": value(o.size.map { Int($0) }),
            "semaphores": value(o.semaphores),
            "attached": value(o.attached),
            "open_by": value(o.openBy),
            "usage_records": value(o.usageRecords),
            "creator_pid": value(o.creatorPID.map { Int($0) }),
            "last_pid": value(o.lastPID.map { Int($0) }),
            "creator_alive": value(o.creatorAlive),
            "last_alive": value(o.lastAlive),
            "waiting": value(o.waiting),
            "made_by": o.maker.rawValue,
            "qt_name": value(o.qtName),
            "qt_kind": value(o.qtKind.map { $0 == .sharedMemory ? "shared-memory" : "system-semaphore" }),
            "key_letters": value(o.keyLetters),
            "legacy_key": value(o.legacyKey),
            "legacy_key_source": value(o.legacyKeySource),
            "key_recoverable": value(o.qtName == nil ? nil : o.legacyKey != nil),
            "key_string": value(keyString(o)),
            "key_file": value(o.keyFile),
            "project_id": value(o.projectID),
            "anchors": o.anchors,
            "run": value(o.runToken),
            "stale": value(o.stale),
            "reason": o.reason,
        ]
    }

    static func journal(_ j: RunJournal) -> [String: Any] {
        func value(_ v: (any Any)?) -> Any { v.map { $0 } ?? NSNull() }
        let state = j.state()
        var stateName = "running"
        var reason: String?
        switch state {
        case .running: break
        case .ended: stateName = "ended"
        case .stale(let why):
            stateName = "stale"
            reason = why
        }
        return [
            "token": j.token,
            "path": j.path,
            "state": stateName,
            "reason": value(reason),
            "runner_pid": value(j.runnerPID.map { Int($0) }),
            "runner_start": value(j.runnerStartTime.map { Int($0) }),
            "time": value(j.time.map { Int($0) }),
            "owner_uid": Int(j.ownerUID),
            "segments": j.segments,
            "files": j.files,
            "lockfiles": j.lockFiles,
            "problems": j.problems,
        ]
    }

    /// Qt's string form of the object's key, when its legacy key is known.
    static func keyString(_ o: IPCObject) -> String? {
        guard let legacy = o.legacyKey, let kind = o.qtKind else { return nil }
        switch o.kind {
        case .posixSegment, .posixSemaphore:
            return NativeIPCKey.legacy(legacy, type: .posixRealtime, kind: kind).toString()
        case .systemVSegment, .systemVSemaphoreSet, .keyFile:
            guard let file = o.keyFile ?? o.path else { return nil }
            let directory = String(file[..<(file.lastIndex(of: "/") ?? file.startIndex)])
            let type: NativeIPCKey.KeyType = o.projectID.map { .systemV(projectID: UInt8(truncatingIfNeeded: $0)) } ?? .systemV
            return NativeIPCKey.legacy(legacy, type: type, kind: kind, tempDirectory: directory).toString()
        case .runFile:
            return nil
        }
    }

    static func hexKey(_ key: Int32) -> String { String(format: "0x%08x", UInt32(bitPattern: key)) }

    static func userName(_ uid: UInt32) -> String {
        guard let entry = getpwuid(uid), let name = entry.pointee.pw_name else { return String(uid) }
        return String(cString: name)
    }
}

/// The text table of `ls`.
enum HousekeepingTable {
    static func render(_ inventory: Inventory) -> String {
        let header = ["KIND", "ID", "KEY", "OWNER", "MODE", "SIZE", "ATT", "CPID", "LPID", "CREATOR", "MADE-BY", "STALE", "NAME"]
        var rows: [[String]] = [header]
        var notes: [String] = []
        for o in inventory.objects {
            let size = o.kind == .systemVSemaphoreSet ? (o.semaphores.map { "\($0) sems" } ?? "-") : (o.size.map(String.init) ?? "-")
            let creator: String
            switch (o.creatorPID, o.creatorAlive) {
            case (.some(let pid), .some(let alive)) where pid > 0: creator = alive ? "alive" : "gone"
            default: creator = "-"
            }
            let stale = o.stale.map { $0 ? "yes" : "no" } ?? "-"
            var name = o.path ?? o.keyFile ?? "-"
            if o.qtName != nil {
                if let key = o.legacyKey {
                    name += "  [legacy key \"\(key)\" from \(o.legacyKeySource ?? "?")]"
                } else {
                    name += "  [letters \"\(o.keyLetters ?? "")\"; key not recoverable]"
                }
            }
            if let run = o.runToken { name += "  [run \(run)]" }
            rows.append([
                o.kind.rawValue, o.id.map(String.init) ?? "-", o.ipcKey.map(HousekeepingJSON.hexKey) ?? "-",
                HousekeepingJSON.userName(o.ownerUID), String(format: "%04o", o.mode), size,
                o.attached.map(String.init) ?? "-", o.creatorPID.map(String.init) ?? "-",
                o.lastPID.map(String.init) ?? "-", creator, o.maker.rawValue, stale, name,
            ])
            if o.stale != nil { notes.append("\(o.label): \(o.stale! ? "stale" : "in use") - \(o.reason)") }
        }
        var widths = [Int](repeating: 0, count: header.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        var out = ""
        if inventory.objects.isEmpty {
            out += "no shared-memory objects\(inventory.allUsers ? "" : " of this user")\n"
        } else {
            for row in rows {
                let cells = row.enumerated().map { i, cell in
                    i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
                }
                out += cells.joined(separator: "  ") + "\n"
            }
        }
        if !notes.isEmpty {
            out += "\nwhy:\n" + notes.map { "  " + $0 + "\n" }.joined()
        }
        if !inventory.journals.isEmpty {
            out += "\nrun journals:\n"
            for j in inventory.journals {
                out += "  \(j.token)  \(j.state())  pid \(j.runnerPID.map(String.init) ?? "?")  \(j.path)\n"
            }
        }
        return out
    }
}
