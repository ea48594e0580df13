import Foundation
import ScenarioKit
import SharedMemoryKit

extension TestcaseRun {
    /// Where each file resource lived, for the report: `res.ID.dir` (the folder) and `res.ID.fstype` (its file
    /// system, from statfs: tmpfs, ext4, ...), so that timings of the same workload on /dev/shm,
    /// XDG_RUNTIME_DIR and a disk can be compared.
    static func storageProperties(_ resources: [Plan.Resource]) -> [(name: String, value: String)] {
        var properties: [(name: String, value: String)] = []
        for resource in resources where resource.kind == .file {
            guard let path = resource.path else { continue }
            let directory = (path as NSString).deletingLastPathComponent
            properties.append(("res.\(resource.id).dir", directory))
            let type = (try? FileSystemType.of(path: directory))?.name ?? "unknown"
            properties.append(("res.\(resource.id).fstype", type))
        }
        return properties
    }
}
