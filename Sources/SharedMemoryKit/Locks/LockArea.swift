import Atomics

/// The 64-byte lock area inside shared memory (docs/lock-layout.md), shared byte for byte with the C
/// harness: `magic` (u32) at 0, `kind` (u32) at 4, 8 reserved bytes, then the lock itself at 16.
@frozen
public struct LockAreaLayout {
    /// `0x4C4D4853` ("SHML" in memory) once initialised.
    public var magic: UInt32
    /// 1 = futex lock word, 2 = robust mutex.
    public var kind: UInt32
    public var reserved: UInt64
    /// The lock, by kind (48 bytes).
    public var lock: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    /// The value of ``magic`` in an initialised area.
    public static let magicValue: UInt32 = 0x4C4D_4853
    /// The area's size in bytes.
    public static let size = 64
    /// Where the lock starts in the area.
    public static let lockOffset = 16
}

/// The futex lock's fields at ``LockAreaLayout/lockOffset`` (kind 1).
@frozen
public struct FutexLockFields {
    /// 0 free, 1 locked, 2 locked and maybe waited for.
    public var word: UInt32
    /// The holder's pid (informational).
    public var owner: UInt32
}

/// Which lock a lock area holds.
public enum LockKind: UInt32, Sendable, CaseIterable {
    case futex = 1
    case robustMutex = 2
}

/// Finding, initialising and checking a lock area in a mapping.
enum LockArea {
    /// The area's start, after checking that `offset` is a multiple of 8 and the 64 bytes fit.
    static func locate(
        _ offset: Int, in memory: UnsafeMutableRawBufferPointer, site: CallSite
    ) throws(SharedMemoryError) -> UnsafeMutableRawPointer {
        guard let base = memory.baseAddress else { throw site.refusal(.invalidSize, "the memory is empty") }
        guard offset >= 0, offset % 8 == 0 else {
            throw site.refusal(.invalidSize, "lock offset \(offset) is not a non-negative multiple of 8")
        }
        guard offset <= memory.count - LockAreaLayout.size else {
            throw site.refusal(
                .invalidSize, "the 64-byte lock area at \(offset) does not fit in \(memory.count) bytes")
        }
        let area = base + offset
        guard UInt(bitPattern: area) % 8 == 0 else {
            throw site.refusal(.invalidSize, "the lock area at \(area) is not 8-byte aligned")
        }
        return area
    }

    static func magic(_ area: UnsafeMutableRawPointer) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: area.assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }

    /// The creator's part: zero-fill, let `initializeLock` set up the lock, write `kind`, then `magic`
    /// last with a release store.
    static func initialize(
        _ area: UnsafeMutableRawPointer, kind: LockKind, site: CallSite,
        _ initializeLock: (UnsafeMutableRawPointer) throws(SharedMemoryError) -> Void
    ) throws(SharedMemoryError) {
        magic(area).store(0, ordering: .relaxed)
        (area + 4).initializeMemory(as: UInt8.self, repeating: 0, count: LockAreaLayout.size - 4)
        try initializeLock(area + LockAreaLayout.lockOffset)
        area.storeBytes(of: kind.rawValue, toByteOffset: 4, as: UInt32.self)
        magic(area).store(LockAreaLayout.magicValue, ordering: .releasing)
    }

    /// A user's part: `magic` (acquire load) and `kind` must match, else `lockError`.
    static func check(_ area: UnsafeMutableRawPointer, kind: LockKind, site: CallSite) throws(SharedMemoryError) {
        let found = magic(area).load(ordering: .acquiring)
        guard found == LockAreaLayout.magicValue else {
            throw site.refusal(
                .lockError, "no initialised lock area here (magic 0x\(String(found, radix: 16)), expected 0x4c4d4853)")
        }
        let foundKind = area.load(fromByteOffset: 4, as: UInt32.self)
        guard foundKind == kind.rawValue else {
            let name = LockKind(rawValue: foundKind).map { "\($0)" } ?? "unknown kind \(foundKind)"
            throw site.refusal(.lockError, "the lock area holds a \(name), not a \(kind)")
        }
    }
}
