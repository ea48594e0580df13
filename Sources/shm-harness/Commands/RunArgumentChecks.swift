import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Checks of `run`'s and `list`'s arguments that must fail before anything runs (exit 2).
enum RunArgumentChecks {
    /// The report's folder must exist: the run never creates folders outside its own.
    static func reportProblem(_ path: String) -> String? {
        guard !path.isEmpty else { return "--junit needs a file name" }
        if path.hasSuffix("/") { return "--junit \(path) names a folder; give a file name" }
        let folder = (path as NSString).deletingLastPathComponent
        let directory = folder.isEmpty ? "." : folder
        var status = stat()
        guard stat(directory, &status) == 0 else {
            return "--junit \(path): the folder \(directory) does not exist (\(String(cString: strerror(errno)))); create it first"
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else { return "--junit \(path): \(directory) is not a folder" }
        guard access(directory, W_OK | X_OK) == 0 else {
            return "--junit \(path): cannot write in \(directory) (\(String(cString: strerror(errno))))"
        }
        if stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFDIR { return "--junit \(path) is a folder; give a file name" }
        return nil
    }

    /// Why `pattern` is not a usable glob (fnmatch would take an unterminated `[` or a trailing `\` literally
    /// and silently select nothing), or nil.
    static func globProblem(_ pattern: String) -> String? {
        let characters = Array(pattern)
        var index = 0
        while index < characters.count {
            switch characters[index] {
            case "\\":
                if index + 1 >= characters.count { return "ends with a lone \\ (write \\\\ for a backslash)" }
                index += 2
            case "[":
                // A bracket expression: `[!` or `[^` negates; a `]` first is literal; `[:class:]` inside.
                var end = index + 1
                if end < characters.count, characters[end] == "!" || characters[end] == "^" { end += 1 }
                if end < characters.count, characters[end] == "]" { end += 1 }
                var closed = false
                while end < characters.count {
                    if characters[end] == "[", end + 1 < characters.count, [":", ".", "="].contains(characters[end + 1]) {
                        let delimiter = characters[end + 1]
                        var inner = end + 2
                        while inner + 1 < characters.count, !(characters[inner] == delimiter && characters[inner + 1] == "]") { inner += 1 }
                        if inner + 1 >= characters.count { return "an unterminated [\(delimiter) in a bracket expression at character \(end + 1)" }
                        end = inner + 2
                        continue
                    }
                    if characters[end] == "]" {
                        closed = true
                        break
                    }
                    end += 1
                }
                if !closed { return "an unterminated [ at character \(index + 1) (write \\[ for a literal [)" }
                index = end + 1
            default:
                index += 1
            }
        }
        return nil
    }
}
