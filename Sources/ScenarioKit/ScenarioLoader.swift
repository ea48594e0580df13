import Foundation
import Yams

/// Loads scenario files (the v1 contract) with Yams, expands the matrix and validates every field.
public enum ScenarioLoader {
    static let topKeys = ["name", "summary", "tags", "requires", "timeout", "matrix", "resources", "setup", "workers", "expect"]
    public static let defaultTimeout: Duration = .seconds(120)

    /// All `.yaml`/`.yml` files under `path` (or `path` itself), sorted.
    public static func files(at path: String) throws(ScenarioErrors) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScenarioErrors([ScenarioError(SourceLocation(file: path, line: 1, column: 1), "no such file or directory")])
        }
        guard isDirectory.boolValue else { return [path] }
        let enumerator = FileManager.default.enumerator(atPath: path)
        var found: [String] = []
        while let item = enumerator?.nextObject() as? String {
            if item.hasSuffix(".yaml") || item.hasSuffix(".yml") {
                found.append(path.hasSuffix("/") ? path + item : path + "/" + item)
            }
        }
        return found.sorted()
    }

    /// The testcases of one file: one per matrix combination.
    /// - Parameter root: the scenarios root, for the JUnit classname (the file's folder below it).
    public static func load(file: String, root: String? = nil) throws(ScenarioErrors) -> [Scenario] {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: 1, column: 1), "cannot read the file: \(error.localizedDescription)")])
        }
        return try load(text: text, file: file, root: root)
    }

    public static func load(text: String, file: String, root: String? = nil) throws(ScenarioErrors) -> [Scenario] {
        let node: Node
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: 1, column: 1), "the file is empty")])
            }
            node = composed
        } catch let error as ScenarioErrors {
            throw error
        } catch let error as YamlError {
            throw ScenarioErrors([yamlError(error, file: file)])
        } catch {
            throw ScenarioErrors([ScenarioError(SourceLocation(file: file, line: 1, column: 1), "not YAML: \(error)")])
        }

        var reader = NodeReader(file: file, variables: [:])
        guard let top = reader.mapping(node, "a scenario", allowed: topKeys) else { throw ScenarioErrors(reader.errors) }
        let combinations = matrix(top.first { $0.key == "matrix" }?.value, reader: &reader)
        guard reader.errors.isEmpty else { throw ScenarioErrors(reader.errors) }

        var scenarios: [Scenario] = []
        var errors: [ScenarioError] = []
        var seenErrors = Set<ScenarioError>()
        for combination in combinations {
            var variables: [String: String] = [:]
            for (name, value) in combination { variables[name] = value }
            var interpreter = Interpreter(reader: NodeReader(file: file, variables: variables))
            let scenario = interpreter.scenario(top, file: file, root: root, combination: combination, node: node)
            for error in interpreter.reader.errors where seenErrors.insert(error).inserted { errors.append(error) }
            if let scenario { scenarios.append(scenario) }
        }
        guard errors.isEmpty else { throw ScenarioErrors(errors) }
        return scenarios
    }

    /// Every combination of the matrix's values, in the matrix's order.
    static func matrix(_ node: Node?, reader: inout NodeReader) -> [[(name: String, value: String)]] {
        guard let node else { return [[]] }
        guard case .mapping(let mapping) = node else {
            reader.fail(node, "matrix must be a mapping of names to lists of values")
            return [[]]
        }
        var combinations: [[(name: String, value: String)]] = [[]]
        for (keyNode, valuesNode) in mapping {
            guard let name = keyNode.scalar?.string, !name.isEmpty,
                name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
            else {
                reader.fail(keyNode, "matrix names are plain words (letters, digits, _ and -)")
                continue
            }
            guard case .sequence(let values) = valuesNode, !values.isEmpty else {
                reader.fail(valuesNode, "matrix '\(name)' must be a non-empty list of values")
                continue
            }
            var strings: [String] = []
            for value in values {
                guard let text = value.scalar?.string else {
                    reader.fail(value, "matrix values must be single values")
                    continue
                }
                if strings.contains(text) { reader.fail(value, "duplicate value '\(text)' in matrix '\(name)'") }
                strings.append(text)
            }
            combinations = combinations.flatMap { prefix in strings.map { prefix + [(name, $0)] } }
        }
        if combinations.count > 4096 { reader.fail(node, "the matrix makes \(combinations.count) combinations; at most 4096") }
        return combinations
    }

    static func yamlError(_ error: YamlError, file: String) -> ScenarioError {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            let text = [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ": ")
            return ScenarioError(SourceLocation(file: file, line: mark.line, column: mark.column), "invalid YAML: \(text)")
        case .reader(let problem, _, _, _):
            return ScenarioError(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(problem)")
        default:
            return ScenarioError(SourceLocation(file: file, line: 1, column: 1), "invalid YAML: \(error)")
        }
    }
}
