import Foundation
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// The machine's IPC objects at one moment: System V segments and semaphore sets, /dev/shm entries, and
/// Qt-style key files (`qipc_*`) in the temp dir. Two snapshots show what a scenario left behind.
struct IPCSnapshot {
    var objects: Set<String>

    static func take() -> IPCSnapshot {
        var objects = Set<String>()
        for (file, label) in [("/proc/sysvipc/shm", "System V segment"), ("/proc/sysvipc/sem", "System V semaphore set")] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count > 1, let key = Int64(fields[0]) else { continue }
                objects.insert("\(label) key 0x\(String(UInt32(truncatingIfNeeded: key), radix: 16)) id \(fields[1])")
            }
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? [] {
            objects.insert("/dev/shm/\(name)")
        }
        let temp = RunEnvironment.temporaryDirectory
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temp)) ?? [] where name.hasPrefix("qipc_") {
            objects.insert("\(temp)/\(name)")
        }
        return IPCSnapshot(objects: objects)
    }

    func added(since before: IPCSnapshot) -> [String] { objects.subtracting(before.objects).sorted() }

    /// The ftok key of a System V native key, while its key file exists.
    static func ftokKey(_ key: NativeIPCKey) -> Int32? {
        guard key.type.isSystemV, let projectID = key.type.projectID else { return nil }
        let value = ftok(key.nativeKey, projectID)
        return value == -1 ? nil : value
    }

    /// What is left of these keys: key files, /dev/shm objects and named semaphores, System V objects.
    static func traces(of keys: [NativeIPCKey], ftokKeys: Set<Int32>, snapshot taken: IPCSnapshot? = nil) -> [String] {
        var found: [String] = []
        for key in keys where !key.nativeKey.isEmpty {
            if key.type.isSystemV {
                if FileManager.default.fileExists(atPath: key.nativeKey) { found.append(key.nativeKey) }
            } else {
                let bare = key.nativeKey.drop(while: { $0 == "/" })
                for path in ["/dev/shm/\(bare)", "/dev/shm/sem.\(bare)"] where FileManager.default.fileExists(atPath: path) {
                    found.append(path)
                }
            }
        }
        let snapshot = taken ?? take()
        for ipcKey in ftokKeys {
            let hex = "key 0x" + String(UInt32(bitPattern: ipcKey), radix: 16) + " "
            found += snapshot.objects.filter { $0.contains(hex) }
        }
        return found
    }
}
