import SystemPackage

extension SystemVSegment {
    /// `ftok` keeps only the low 16 inode bits, one device byte and the project id: two key files can give one
    /// IPC key. Why a segment that exists under the key of `file` may be another key's, or "" when nothing
    /// says so: the key file was made just now, or it has several names (hard links). Same text as the C
    /// library's `shmh_sysv_foreign_segment_note`.
    static func foreignSegmentNote(_ file: ObjectFile) -> String {
        if file.created {
            return "; the key file \(file.path) was made just now, so the segment under its ftok key belongs to "
                + "another key file whose ftok key collides (same low 16 inode bits, device and project id), or to "
                + "one since removed"
        }
        let names = file.status.linkCount
        if names > 1 {
            return "; the key file \(file.path) has \(names) names (hard links): the segment may belong to another "
                + "key whose key file is the same file"
        }
        return ""
    }
}
