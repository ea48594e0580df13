import CShmh

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Which Qt class a legacy key is derived for: they use different name prefixes.
public enum IPCObjectKind: String, Sendable, CaseIterable {
    /// `QSharedMemory`: prefix `qipc_sharedmemory_`.
    case sharedMemory
    /// `QSystemSemaphore`: prefix `qipc_systemsem_`.
    case systemSemaphore

    var prefix: String {
        switch self {
        case .sharedMemory: "qipc_sharedmemory_"
        case .systemSemaphore: "qipc_systemsem_"
        }
    }
}

extension NativeIPCKey {
    /// Qt's `QSharedMemory::legacyNativeKey()` / `QSystemSemaphore::legacyNativeKey()` (the key Qt 4.4–6.5's
    /// `setKey()` used): prefix, the ASCII letters of `key`, and the lowercase hex SHA-1 of its UTF-8 bytes;
    /// under the temp dir for System V (a key file path), with a leading `/` for POSIX.
    ///
    /// An empty `key` gives an empty native key with no legacy key. Windows keys are unsupported here and
    /// give an empty native key, as Qt on Linux does.
    /// - Parameter tempDirectory: the directory of System V key files; default Qt's `QDir::tempPath()`.
    public static func legacy(
        _ key: String, type: KeyType = .legacyDefaultForOS, kind: IPCObjectKind = .sharedMemory,
        tempDirectory: String? = nil
    ) -> NativeIPCKey {
        guard !key.isEmpty else { return NativeIPCKey("", type: type) }
        let name = legacyName(key, kind: kind)
        let native: String
        switch type {
        case .posixRealtime: native = "/" + name
        case .windows: return NativeIPCKey("", type: type)  // unsupported on this platform, as in Qt
        default:
            // Every other value, the invalid type 0 included, takes Qt's System V path.
            native = (tempDirectory ?? TempDirectory.qtTempPath()) + "/" + name
        }
        return NativeIPCKey(type: type, nativeKey: native, legacyKey: key)
    }

    /// The file or object name Qt derives from a legacy key, without directory or slash.
    static func legacyName(_ key: String, kind: IPCObjectKind) -> String {
        let letters = key.unicodeScalars.filter { ("a"..."z").contains($0) || ("A"..."Z").contains($0) }
        let bytes = Array(key.utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        bytes.withUnsafeBytes { input in
            digest.withUnsafeMutableBufferPointer { shmh_sha1(input.baseAddress, input.count, $0.baseAddress) }
        }
        let hex = digest.map { byte in
            let digits = Array("0123456789abcdef")
            return String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 0xF)])
        }.joined()
        return kind.prefix + String(String.UnicodeScalarView(letters)) + hex
    }

    /// The key of the system semaphore that a segment with this key locks through (Qt 6.6+
    /// `QSharedMemoryPrivate::semaphoreNativeKey()`): for a legacy key, the semaphore's legacy derivation of
    /// the same legacy key; otherwise the same native key (System V: the same key file and `ftok` key).
    public func lockSemaphoreKey(tempDirectory: String? = nil) -> NativeIPCKey {
        guard let legacyKey else { return NativeIPCKey(nativeKey, type: type) }
        let tempDirectory = tempDirectory ?? (type.isSystemV ? directoryOfNativeKey : nil)
        return .legacy(legacyKey, type: type, kind: .systemSemaphore, tempDirectory: tempDirectory)
    }

    /// For a System V legacy key: the directory its key file is in (so the semaphore goes beside it).
    var directoryOfNativeKey: String? {
        guard let slash = nativeKey.lastIndex(of: "/"), slash != nativeKey.startIndex else { return nil }
        return String(nativeKey[..<slash])
    }
}

/// Qt's `QDir::tempPath()` on Unix: `$TMPDIR` (or `/tmp`), cleaned, then made canonical when it exists.
enum TempDirectory {
    static func qtTempPath() -> String {
        var raw = "/tmp"
        if let env = getenv("TMPDIR"), env.pointee != 0 { raw = String(cString: env) }
        let cleaned = cleanPath(raw)
        guard let real = realpath(cleaned, nil) else { return cleaned }
        defer { free(real) }
        return String(cString: real)
    }

    /// `QDir::cleanPath()`: collapses `//`, removes `.` and resolves `..` textually, drops a trailing `/`.
    static func cleanPath(_ path: String) -> String {
        let absolute = path.hasPrefix("/")
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == "..", let last = parts.last, last != ".." {
                parts.removeLast()
                continue
            }
            if part == "..", absolute { continue }
            parts.append(part)
        }
        let joined = parts.joined(separator: "/")
        if absolute { return "/" + joined }
        return joined.isEmpty ? "." : joined
    }
}
