#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Where a System V key file may be: in the temp folder (Qt's `QDir::tempPath()`, where every legacy key
/// lives), the system's temp folder `/tmp` (Qt's fallback, and where another process with another `TMPDIR`
/// derives its keys), or the runtime folder (`$XDG_RUNTIME_DIR`), or a folder below one of them. A native key naming any
/// other path (`systemv:/etc/passwd`) is refused unless the caller opts in (`allowAnyPath`, CLI
/// `--allow-any-path`): the library opens, and may create, the file a key names, so a key should not reach
/// files of the system or of the user that have nothing to do with shared memory.
///
/// The folder of the key is resolved with `realpath` (symlinks and `..` in the folder part are followed, so
/// `/tmp/../etc/x` is `/etc/x`); the file itself is never followed (it is opened with `O_NOFOLLOW`).
public enum KeyPathPolicy {
    /// The folders key files may be in, as given and resolved: the temp folder, `/tmp` and, when set, the
    /// runtime folder.
    public static func allowedFolders() -> [String] {
        var folders = [TempDirectory.qtTempPath(), "/tmp"]
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), runtime.hasPrefix("/") {
            folders.append(TempDirectory.cleanPath(runtime))
        }
        var all: [String] = []
        for folder in folders {
            all.append(folder)
            if let real = resolved(folder), real != folder { all.append(real) }
        }
        return all
    }

    /// Nil when `key` may be used: not System V, or its key file is inside an allowed folder. Otherwise the
    /// reason, naming the key, the path and the rule.
    public static func refusal(_ key: NativeIPCKey) -> String? {
        guard key.type.isSystemV, !key.nativeKey.isEmpty else { return nil }
        var path = key.nativeKey
        if !path.hasPrefix("/") {
            guard let cwd = getcwd(nil, 0) else {
                return "cannot resolve the relative key path \(path) (getcwd failed)"
            }
            defer { free(cwd) }
            path = String(cString: cwd) + "/" + path
        }
        let cleaned = TempDirectory.cleanPath(path)
        let folder = cleaned.lastIndex(of: "/").map { $0 == cleaned.startIndex ? "/" : String(cleaned[..<$0]) } ?? "/"
        let where_ = resolved(folder) ?? folder
        let allowed = allowedFolders()
        if allowed.contains(where: { where_ == $0 || where_.hasPrefix($0 == "/" ? "/" : $0 + "/") }) { return nil }
        let runtime = getenv("XDG_RUNTIME_DIR").map { "the runtime folder " + String(cString: $0) }
            ?? "the runtime folder ($XDG_RUNTIME_DIR, unset)"
        return "the key \(key) names the file \(cleaned), which is outside the temp folder "
            + "\(TempDirectory.qtTempPath()), /tmp and \(runtime); System V key files must be in one of them "
            + "(set allowAnyPath, or pass --allow-any-path, to use any path)"
    }

    /// Throws `keyError` when ``refusal(_:)`` refuses the key and the caller did not opt in.
    static func check(_ key: NativeIPCKey, allowAnyPath: Bool, site: CallSite) throws(SharedMemoryError) {
        if allowAnyPath { return }
        if let reason = refusal(key) { throw site.refusal(.keyError, reason) }
    }

    private static func resolved(_ folder: String) -> String? {
        guard let real = realpath(folder, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
