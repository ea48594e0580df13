import Testing

@testable import SharedMemoryKit

/// Qt's tst_qnativeipckey, case by case (the toString/fromString tables are in KeyVectorTests).
@Suite struct NativeIPCKeyTests {
    @Test func defaultTypes() {
        #expect(NativeIPCKey.KeyType.systemV.rawValue == 0x51)
        #expect(NativeIPCKey.KeyType.defaultForOS == .posixRealtime)
        #expect(NativeIPCKey.KeyType.legacyDefaultForOS == .systemV)
        #expect(NativeIPCKey.KeyType.defaultForOS.isSupported)
        #expect(NativeIPCKey.KeyType.legacyDefaultForOS.isSupported)
        #expect(!NativeIPCKey.KeyType.windows.isSupported)
    }

    @Test func construct() {
        let empty = NativeIPCKey()
        #expect(empty.type == .defaultForOS)
        #expect(empty.isEmpty)
        #expect(empty.isValid)
        #expect(empty.legacyKey == nil)

        let named = NativeIPCKey("/foo", type: .systemV)
        #expect(named.nativeKey == "/foo")
        #expect(named.type == .systemV)
        let copy = named
        #expect(copy == named)

        let invalid = NativeIPCKey("/foo", type: .invalid)
        #expect(!invalid.isValid)
        #expect(invalid.toString() == nil)
    }

    @Test func getSet() {
        var key = NativeIPCKey()
        key.type = .systemV(projectID: 84)
        key.nativeKey = "/tmp/x"
        #expect(key.type.rawValue == 84)
        #expect(key.type.projectID == 84)
        #expect(key.toString() == "systemv-84:/tmp/x")
    }

    @Test func equality() {
        let a = NativeIPCKey("/x", type: .posixRealtime)
        #expect(a != NativeIPCKey("/x", type: .systemV), "the type takes part")
        let legacy = NativeIPCKey.legacy("x", type: .posixRealtime)
        var plain = NativeIPCKey(legacy.nativeKey, type: .posixRealtime)
        #expect(legacy != plain, "a legacy key is unequal to a plain key with the same native key")
        var copy = legacy
        #expect(copy == legacy)
        copy.nativeKey = legacy.nativeKey
        #expect(copy != legacy, "setting the native key drops the legacy key")
        #expect(copy == plain)
        plain.nativeKey = "/other"
        #expect(copy != plain)
    }

    @Test func hash() {
        let key = NativeIPCKey.legacy("hash me")
        var h1 = Hasher()
        var h2 = Hasher()
        key.hash(into: &h1)
        NativeIPCKey(key.nativeKey, type: key.type).hash(into: &h2)
        #expect(h1.finalize() == h2.finalize(), "the legacy key is not hashed, as in Qt")
        #expect(Set([key, key]).count == 1)
    }

    @Test(arguments: [NativeIPCKey.KeyType.systemV, .posixRealtime])
    func legacyKeysRoundTrip(type: NativeIPCKey.KeyType) throws {
        for text in ["test", "a&b", "Noël", "x=y?z#w", "100%", "tab\there"] {
            let key = NativeIPCKey.legacy(text, type: type)
            let string = try #require(key.toString())
            #expect(string.contains("?legacyKey="))
            #expect(NativeIPCKey(string: string) == key)
        }
    }

    @Test func workedExamplesFromQt() {
        #expect(
            NativeIPCKey.legacy("test", type: .systemV, tempDirectory: "/tmp").toString()
                == "systemv:/tmp/qipc_sharedmemory_testa94a8fe5ccb19ba61c4c0873d391e987982fbbd3?legacyKey=test")
        #expect(
            NativeIPCKey.legacy("Noël", type: .posixRealtime, kind: .systemSemaphore).toString()
                == "posix:/qipc_systemsem_Nolf74a492d6bd59d7591144462d27aa3e29d1701c1?legacyKey=Noël")
        #expect(NativeIPCKey.legacy("", type: .posixRealtime).toString() == "posix:")
        #expect(NativeIPCKey.legacy("x", type: .windows).nativeKey == "")
    }

    @Test func uniqueKey() {
        // tst_qsharedmemory::uniqueKey: derived names are equal iff the inputs are; "Noël" and "Nol" differ.
        let pairs = [("a", "a", true), ("a", "b", false), ("Noël", "Nol", false), ("a1", "a2", false)]
        for (x, y, same) in pairs {
            #expect((NativeIPCKey.legacy(x).nativeKey == NativeIPCKey.legacy(y).nativeKey) == same)
        }
    }

    @Test func lockSemaphoreKey() {
        let legacy = NativeIPCKey.legacy("lockme", type: .systemV, tempDirectory: "/tmp")
        #expect(legacy.lockSemaphoreKey() == NativeIPCKey.legacy("lockme", type: .systemV, kind: .systemSemaphore, tempDirectory: "/tmp"))
        let native = NativeIPCKey("/tmp/native", type: .systemV)
        #expect(native.lockSemaphoreKey() == native, "a native key locks through the same key")
    }

    @Test func tempPathIsCleaned() {
        #expect(TempDirectory.cleanPath("/tmp//x/./y/../") == "/tmp/x")
        #expect(TempDirectory.cleanPath("/") == "/")
        #expect(TempDirectory.cleanPath("/..") == "/")
    }
}
