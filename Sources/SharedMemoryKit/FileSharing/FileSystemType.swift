import CShmShim
import SystemPackage

/// The type of a file system, from `statfs`'s `f_type` magic number: memory (tmpfs) or disk.
///
/// Shared memory on tmpfs lives in RAM (and swap); on a disk file system every dirty page is eventually
/// written back to the disk, which costs I/O and leaves the data on the disk.
public struct FileSystemType: Hashable, Sendable, CustomStringConvertible {
    /// The `f_type` magic number (linux/magic.h).
    public let magic: UInt64

    public init(magic: UInt64) { self.magic = magic }

    /// tmpfs (`TMPFS_MAGIC`, 0x01021994): /dev/shm, usually $XDG_RUNTIME_DIR, and every memfd.
    public static var tmpfs: FileSystemType { FileSystemType(magic: SHM_SHIM_TMPFS_MAGIC) }
    /// ramfs (`RAMFS_MAGIC`): memory without swap or size limit.
    public static var ramfs: FileSystemType { FileSystemType(magic: SHM_SHIM_RAMFS_MAGIC) }

    public var isTmpfs: Bool { self == .tmpfs }
    /// tmpfs or ramfs: the pages live in memory, not on a disk.
    public var isMemoryBacked: Bool { self == .tmpfs || self == .ramfs }

    private static let names: [UInt64: String] = [
        0x0102_1994: "tmpfs", 0x8584_58f6: "ramfs", 0xEF53: "ext4", 0x5846_5342: "xfs", 0x9123_683E: "btrfs",
        0x794C_7630: "overlayfs", 0x6969: "nfs", 0xFF53_4D42: "cifs", 0x6573_5546: "fuse", 0x2FC1_2FC1: "zfs",
        0x4D44: "vfat", 0x5346_544E: "ntfs", 0x0102_1997: "9p", 0x6265_6572: "sysfs", 0x9FA0: "proc",
    ]

    /// A short name (`tmpfs`, `ext4`, ...) or the magic number in hex.
    public var name: String { Self.names[magic] ?? "0x" + String(magic, radix: 16) }
    public var description: String { name }

    /// The type of the file system holding `path` (symlinks followed).
    ///
    /// The corresponding C function is `statfs`.
    public static func of(path: String) throws(SharedMemoryError) -> FileSystemType {
        var type: UInt64 = 0
        _ = try CallSite(operation: "statfs", object: path).check("statfs") { shm_shim_statfs_type(path, &type) }
        return FileSystemType(magic: type)
    }

    /// The type of the file system holding an open file.
    ///
    /// The corresponding C function is `fstatfs`.
    public static func of(descriptor: FileDescriptor) throws(SharedMemoryError) -> FileSystemType {
        var type: UInt64 = 0
        _ = try CallSite(operation: "statfs", object: "fd \(descriptor.rawValue)").check("fstatfs") {
            shm_shim_fstatfs_type(descriptor.rawValue, &type)
        }
        return FileSystemType(magic: type)
    }
}
