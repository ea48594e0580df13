import Foundation
import ScenarioKit

/// The catalogue as Markdown, for the README: one table per folder (JUnit classname) with each file, its
/// testcases and its `summary:`. `shm-harness list --markdown scenarios` prints it and
/// `scripts/update-readme-catalogue.sh` puts it in README.md ("Catalogue"), which a test keeps in sync.
public enum Catalogue {
    /// The Markdown for `scenarios` (every testcase of the files; a file's matrix counts each combination).
    /// - Parameter base: file paths are shown relative to this folder (the README's), when they are inside it.
    public static func markdown(_ scenarios: [Scenario], base: String) -> String {
        struct Entry {
            var file: String
            var testcases: Int
            var summary: String
        }
        var folders: [String: [String: Entry]] = [:]
        for scenario in scenarios {
            let file = relativePath(scenario.file, to: base)
            folders[scenario.classname, default: [:]][file, default: Entry(file: file, testcases: 0, summary: scenario.summary)].testcases += 1
        }
        let files = folders.values.reduce(0) { $0 + $1.count }
        var out = "\(files) scenario files, \(scenarios.count) testcases (a matrix makes one testcase per combination).\n"
        for folder in folders.keys.sorted() {
            let entries = folders[folder]!.values.sorted { $0.file < $1.file }
            out += "\n### \(folder)\n\n| file | testcases | what it proves |\n|---|---|---|\n"
            for entry in entries {
                let name = URL(fileURLWithPath: entry.file).lastPathComponent
                out += "| [\(cell(name))](\(entry.file)) | \(entry.testcases) | \(cell(entry.summary.isEmpty ? "(no summary)" : entry.summary)) |\n"
            }
        }
        return out
    }

    /// A table cell: one line, `|` escaped.
    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "|", with: "\\|")
    }

    public static func relativePath(_ path: String, to base: String) -> String {
        let full = URL(fileURLWithPath: path).standardizedFileURL.path
        let root = URL(fileURLWithPath: base).standardizedFileURL.path
        let prefix = root.hasSuffix("/") ? root : root + "/"
        return full.hasPrefix(prefix) ? String(full.dropFirst(prefix.count)) : path
    }
}
