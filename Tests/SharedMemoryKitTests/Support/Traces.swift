import Foundation
import SharedMemoryKit
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What a key leaves on the machine: key files, System V objects with its ftok key, /dev/shm entries.
/// Tests assert that a key leaves nothing once every handle is gone.
enum Traces {
    /// Every trace of `key`: its key file, the lock semaphore's key file, POSIX objects, and System V objects
    /// whose key was derived from a key file while it existed (checked by listing them before the files go).
    static func of(_ key: NativeIPCKey) -> [String] {
        var found: [String] = []
        let keys = [key, key.lockSemaphoreKey()]
        for k in keys {
            if k.type.isSystemV {
                if FileManager.default.fileExists(atPath: k.nativeKey) { found.append("key file \(k.nativeKey)") }
            } else {
                let bare = k.nativeKey.drop(while: { $0 == "/" })
                for path in ["/dev/shm/\(bare)", "/dev/shm/sem.\(bare)"]
                where FileManager.default.fileExists(atPath: path) {
                    found.append(path)
                }
            }
        }
        return Array(Set(found)).sorted()
    }

    /// System V objects (segments and semaphore sets) owned by keys with the given ftok ids.
    static func systemVObjects(keys: Set<Int32>) -> [String] {
        var found: [String] = []
        for (file, label) in [("/proc/sysvipc/shm", "segment"), ("/proc/sysvipc/sem", "semaphore set")] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard let raw = fields.first, let value = Int64(raw) else { continue }
                if keys.contains(Int32(truncatingIfNeeded: value)) { found.append("\(label) key \(value)") }
            }
        }
        return found
    }

    /// The System V objects (as "segment key K id I" / "semaphore set key K id I") with the given ftok ids now.
    /// A key file's inode, and so its ftok key, is reused once the file is gone: tests that run at the same time
    /// may make objects under a key a finished test used. Comparing ids tells the objects apart.
    static func systemVObjectIDs(keys: Set<Int32>) -> Set<String> {
        var found: Set<String> = []
        for (file, label) in [("/proc/sysvipc/shm", "segment"), ("/proc/sysvipc/sem", "semaphore set")] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 1, let value = Int64(fields[0]), keys.contains(Int32(truncatingIfNeeded: value)) else { continue }
                found.insert("\(label) key \(value) id \(fields[1])")
            }
        }
        return found
    }

    /// Which of the objects `systemVObjectIDs` listed still exist (same key, same id).
    static func stillThere(_ objects: Set<String>, keys: Set<Int32>) -> [String] {
        Array(systemVObjectIDs(keys: keys).intersection(objects)).sorted()
    }

    /// The ftok key of a System V native key's file, if the file exists.
    static func ftokKey(_ key: NativeIPCKey) -> Int32? {
        guard key.type.isSystemV else { return nil }
        let k = ftok(key.nativeKey, key.type.projectID!)
        return k == -1 ? nil : k
    }
}

/// Records a key's System V ids while its files exist, and checks at the end that nothing is left.
struct LeakCheck {
    let keys: [NativeIPCKey]
    private var ipcKeys: Set<Int32> = []
    /// The objects under those keys when `remember()` ran ("segment key K id I").
    private var objects: Set<String> = []

    init(_ keys: NativeIPCKey...) { self.keys = keys }

    /// Call while the objects exist (after create), so the ftok keys can be computed from the key files.
    mutating func remember() {
        for key in keys {
            for k in [key, key.lockSemaphoreKey()] {
                if let ipc = Traces.ftokKey(k) { ipcKeys.insert(ipc) }
            }
        }
        objects = Traces.systemVObjectIDs(keys: ipcKeys)
    }

    /// What is left: key files and POSIX names, the System V objects seen at `remember()` that still exist,
    /// and objects under a key that had none then (made later, such as a lock semaphore). An object under a key
    /// whose remembered objects are all gone is another test's (the key file's inode was reused).
    func leftovers() -> [String] {
        let remembered = Set(objects.compactMap { Int64($0.split(separator: " ").dropLast(2).last ?? "") }.map { Int32(truncatingIfNeeded: $0) })
        let now = Traces.systemVObjectIDs(keys: ipcKeys)
        let left = now.filter { object in
            guard let key = Int64(object.split(separator: " ").dropLast(2).last ?? "") else { return true }
            return objects.contains(object) || !remembered.contains(Int32(truncatingIfNeeded: key))
        }
        return keys.flatMap { Traces.of($0) } + left.sorted()
    }

    func expectClean(sourceLocation: SourceLocation = #_sourceLocation) {
        let left = leftovers()
        #expect(left.isEmpty, "left behind: \(left)", sourceLocation: sourceLocation)
    }
}
