import Foundation
import Yams

/// Reads a composed YAML tree into typed values, collecting every problem with its `FILE:LINE:COLUMN`, and
/// substituting `${name}` from the matrix combination in every scalar.
struct NodeReader {
    let file: String
    let variables: [String: String]
    private(set) var errors: [ScenarioError] = []

    init(file: String, variables: [String: String]) {
        self.file = file
        self.variables = variables
    }

    func location(_ node: Node?) -> SourceLocation {
        guard let mark = node?.mark else { return SourceLocation(file: file, line: 1, column: 1) }
        return SourceLocation(file: file, line: mark.line, column: mark.column)
    }

    mutating func fail(_ node: Node?, _ message: String) {
        errors.append(ScenarioError(location(node), message))
    }

    mutating func fail(at location: SourceLocation, _ message: String) {
        errors.append(ScenarioError(location, message))
    }

    /// A scalar with `${name}` substituted; nil (and an error) for a mapping, sequence or alias.
    mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let scalar) = node else {
            fail(node, "\(what) must be a single value, not \(Self.describe(node))")
            return nil
        }
        return substitute(scalar.string, node)
    }

    /// `${name}` is the matrix value; `$${` is a literal `${` (for shell commands).
    mutating func substitute(_ text: String, _ node: Node) -> String? {
        guard text.contains("${") else { return text }
        var out = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "$" {
                out += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            out += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                fail(node, "unterminated ${ in '\(text)'")
                return nil
            }
            let name = String(rest[start.upperBound..<end])
            guard let value = variables[name] else {
                let known = variables.keys.sorted()
                fail(node, "unknown variable ${\(name)}" + (known.isEmpty ? " (the scenario has no matrix)" : "; the matrix defines \(known.joined(separator: ", "))") + " (write $${ for a literal ${)")
                return nil
            }
            out += value
            rest = rest[rest.index(after: end)...]
        }
        return out + rest
    }

    mutating func int(_ node: Node, _ what: String, range: ClosedRange<Int>? = nil) -> Int? {
        guard let text = string(node, what) else { return nil }
        guard let value = Self.parseInteger(text) else {
            fail(node, "\(what) must be an integer, not '\(text)'")
            return nil
        }
        if let range, !range.contains(value) {
            fail(node, "\(what) must be in \(range.lowerBound)...\(range.upperBound), not \(value)")
            return nil
        }
        return value
    }

    /// Sizes take an optional binary suffix: `4096`, `4KiB`, `1MiB`, `2GiB`.
    mutating func size(_ node: Node, _ what: String) -> Int? {
        guard let text = string(node, what) else { return nil }
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            if let n = Self.parseInteger(String(text.dropLast(suffix.count))), n >= 0, n <= Int.max / scale { return n * scale }
        }
        if let n = Self.parseInteger(text), n >= 0 { return n }
        fail(node, "\(what) must be a size in bytes (e.g. 4096 or 4KiB), not '\(text)'")
        return nil
    }

    mutating func duration(_ node: Node, _ what: String) -> Duration? {
        guard let text = string(node, what) else { return nil }
        guard let value = DurationText.parse(text) else {
            fail(node, "\(what) must be a duration such as 250ms, 2s or 1m, not '\(text)'")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node, _ what: String) -> Bool? {
        guard let text = string(node, what) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            fail(node, "\(what) must be true or false, not '\(text)'")
            return nil
        }
    }

    mutating func choice<E: RawRepresentable & CaseIterable>(_ node: Node, _ what: String, as: E.Type) -> E? where E.RawValue == String {
        guard let text = string(node, what) else { return nil }
        guard let value = E(rawValue: text) else {
            fail(node, "unknown \(what) '\(text)'; expected one of: \(E.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        return value
    }

    /// A sequence's items, or a single scalar as a one-item list.
    mutating func list(_ node: Node, _ what: String) -> [Node]? {
        switch node {
        case .sequence(let sequence): return Array(sequence)
        case .scalar: return [node]
        default:
            fail(node, "\(what) must be a list, not \(Self.describe(node))")
            return nil
        }
    }

    /// A mapping's entries in order, refusing keys outside `allowed` (typos are errors) and duplicates.
    mutating func mapping(_ node: Node, _ what: String, allowed: [String]) -> [(key: String, keyNode: Node, value: Node)]? {
        guard case .mapping(let mapping) = node else {
            fail(node, "\(what) must be a mapping, not \(Self.describe(node))")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                fail(keyNode, "keys in \(what) must be plain names")
                continue
            }
            let key = scalar.string
            if !allowed.contains(key) {
                fail(keyNode, "unknown key '\(key)' in \(what); expected one of: \(allowed.joined(separator: ", "))")
                continue
            }
            if !seen.insert(key).inserted {
                fail(keyNode, "duplicate key '\(key)' in \(what)")
                continue
            }
            entries.append((key, keyNode, value))
        }
        return entries
    }

    static func parseInteger(_ text: String) -> Int? {
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        if cleaned.hasPrefix("0x") || cleaned.hasPrefix("0X") { return Int(cleaned.dropFirst(2), radix: 16) }
        return Int(cleaned)
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar: "a single value"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}
