import Foundation
import Testing

@testable import SharedMemoryKit

/// Key derivation and string forms against vectors recorded from real Qt 6.12 with PySide6
/// (`Tests/QtPeer/make_key_vectors.py` wrote `Resources/qt-key-vectors.json`).
@Suite struct KeyVectorTests {
    struct Vectors: Decodable {
        struct Legacy: Decodable {
            let key: String
            let kind: String
            let type: UInt16
            let nativeKey: String
            let string: String?
            let roundTripEqual: Bool
        }
        struct ToString: Decodable {
            let nativeKey: String
            let type: UInt16
            let legacyKey: String?
            let string: String?
            let roundTripEqual: Bool
        }
        struct FromString: Decodable {
            let input: String
            let valid: Bool
            let type: UInt16
            let nativeKey: String
            let legacyKey: String?
            let toString: String?
        }
        struct Defaults: Decodable {
            let DefaultTypeForOs: UInt16
            let legacyDefaultTypeForOs: UInt16
        }
        let tempDir: String
        let defaults: Defaults
        let legacy: [Legacy]
        let toString: [ToString]
        let fromString: [FromString]
    }

    static let vectors: Vectors = {
        let path = TestEnvironment.packageRoot + "/Tests/SharedMemoryKitTests/Resources/qt-key-vectors.json"
        let data = FileManager.default.contents(atPath: path) ?? Data()
        return (try? JSONDecoder().decode(Vectors.self, from: data))
            ?? Vectors(tempDir: "", defaults: .init(DefaultTypeForOs: 0, legacyDefaultTypeForOs: 0), legacy: [], toString: [], fromString: [])
    }()

    @Test func vectorsLoaded() {
        #expect(Self.vectors.legacy.count > 1000)
        #expect(Self.vectors.toString.count > 1000)
        #expect(Self.vectors.fromString.count > 1000)
    }

    @Test func defaultTypes() {
        #expect(NativeIPCKey.KeyType.defaultForOS.rawValue == Self.vectors.defaults.DefaultTypeForOs)
        #expect(NativeIPCKey.KeyType.legacyDefaultForOS.rawValue == Self.vectors.defaults.legacyDefaultTypeForOs)
        #expect(NativeIPCKey.KeyType.systemV.rawValue == UInt16(UInt8(ascii: "Q")))
    }

    @Test func legacyDerivationMatchesQt() {
        var mismatches: [String] = []
        for v in Self.vectors.legacy {
            let kind: IPCObjectKind = v.kind == "sharedmemory" ? .sharedMemory : .systemSemaphore
            let key = NativeIPCKey.legacy(v.key, type: .init(rawValue: v.type), kind: kind, tempDirectory: Self.vectors.tempDir)
            if key.nativeKey != v.nativeKey || key.toString() != v.string {
                mismatches.append("\(v.kind) \(v.type) \(v.key.debugDescription): got \(key.toString() ?? "nil"), Qt \(v.string ?? "nil")")
            }
            if v.roundTripEqual, let string = v.string, NativeIPCKey(string: string) != key {
                mismatches.append("round trip of \(string.debugDescription) differs: \(String(describing: NativeIPCKey(string: string)))")
            }
        }
        #expect(mismatches.count == 0, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
    }

    @Test func toStringMatchesQt() {
        var mismatches: [String] = []
        for v in Self.vectors.toString {
            let key = NativeIPCKey(type: .init(rawValue: v.type), nativeKey: v.nativeKey, legacyKey: v.legacyKey)
            if key.toString() != v.string {
                mismatches.append("\(v.type) \(v.nativeKey.debugDescription): got \(key.toString()?.debugDescription ?? "nil"), Qt \(v.string?.debugDescription ?? "nil")")
            }
            if v.roundTripEqual, let string = v.string, NativeIPCKey(string: string) != key {
                mismatches.append("round trip of \(string.debugDescription) gives \(String(describing: NativeIPCKey(string: string)?.nativeKey.debugDescription))")
            }
        }
        #expect(mismatches.count == 0, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
    }

    @Test func fromStringMatchesQt() {
        var mismatches: [String] = []
        for v in Self.vectors.fromString {
            let parsed = NativeIPCKey(string: v.input)
            guard v.valid else {
                if let parsed { mismatches.append("\(v.input.debugDescription): Qt invalid, got \(parsed)") }
                continue
            }
            guard let parsed else {
                mismatches.append("\(v.input.debugDescription): Qt valid (\(v.toString ?? "")), got invalid")
                continue
            }
            let legacy = parsed.legacyKey.flatMap { $0.isEmpty ? nil : $0 }
            if parsed.type.rawValue != v.type || parsed.nativeKey != v.nativeKey || legacy != v.legacyKey
                || parsed.toString() != v.toString
            {
                mismatches.append(
                    "\(v.input.debugDescription): Qt \(v.type) \(v.nativeKey.debugDescription) legacy \(v.legacyKey.debugDescription) -> \(v.toString?.debugDescription ?? "nil"); got \(parsed.type.rawValue) \(parsed.nativeKey.debugDescription) legacy \(parsed.legacyKey.debugDescription) -> \(parsed.toString()?.debugDescription ?? "nil")")
            }
        }
        #expect(mismatches.count == 0, "\(mismatches.count) mismatches, first: \(mismatches.prefix(8).joined(separator: "\n"))")
    }
}
