import CShmShim

#if canImport(Glibc)
import Glibc
#endif

extension HousekeepingIO {
    /// Removes `path` and, if it is a directory, everything below it, without following a symbolic link (a
    /// link is removed, never what it points to). nil when done, else what could not be removed and why.
    static func removeTree(_ path: String) -> String? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return failure(path) }
        guard status.st_mode & S_IFMT == S_IFDIR else { return unlink(path) == 0 ? nil : failure(path) }
        let fd = shm_shim_open(path, O_RDONLY | O_DIRECTORY | SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC, 0)
        guard fd >= 0 else { return failure(path) }
        let problem = emptyDirectory(fd, path)
        close(fd)
        if let problem { return problem }
        return rmdir(path) == 0 ? nil : failure(path)
    }

    /// Removes everything in the open directory `fd` (named `path` in messages).
    private static func emptyDirectory(_ fd: Int32, _ path: String) -> String? {
        let copy = dup(fd)
        guard copy >= 0, let dir = fdopendir(copy) else {
            if copy >= 0 { close(copy) }
            return failure(path)
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        for name in names {
            let child = path + "/" + name
            if unlinkat(fd, name, 0) == 0 { continue }
            // Linux: unlinkat of a directory without AT_REMOVEDIR fails with EISDIR.
            guard errno == EISDIR else { return failure(child) }
            let sub = openat(fd, name, O_RDONLY | O_DIRECTORY | SHM_SHIM_O_NOFOLLOW | SHM_SHIM_O_CLOEXEC)
            guard sub >= 0 else { return failure(child) }
            let problem = emptyDirectory(sub, child)
            close(sub)
            if let problem { return problem }
            guard unlinkat(fd, name, AT_REMOVEDIR) == 0 else { return failure(child) }
        }
        return nil
    }

    private static func failure(_ path: String) -> String {
        "cannot remove \(path): \(String(cString: strerror(errno)))"
    }
}
