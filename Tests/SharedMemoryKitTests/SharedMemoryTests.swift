import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SharedMemoryKit

/// Qt's tst_qsharedmemory, ported case by case, on both backends. Each case either matches Qt or checks a
/// documented divergence (named in the test).
@Suite struct SharedMemoryTests {
    @Test func constructor() {
        let memory = SharedMemory(key: NativeIPCKey())
        #expect(!memory.isAttached)
        #expect(memory.data == nil)
        #expect(memory.size == 0)
        #expect(memory.key == NativeIPCKey())
    }

    @Test(arguments: Backend.allCases)
    func createErrors(backend: Backend) throws {
        // Null key: KeyError.
        let null = SharedMemory(key: NativeIPCKey("", type: backend.type))
        #expect(throws: SharedMemoryError.self) { try null.create(size: 1024) }
        do { try null.create(size: 1024) } catch { #expect(error.code == .keyError) }

        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let memory = SharedMemory(key: key)
        // Size -1 and 0: InvalidSize (Qt: "create size is less then 0"), and nothing is made.
        for size in [-1, 0] {
            do {
                try memory.create(size: size)
                Issue.record("create(\(size)) succeeded")
            } catch {
                #expect(error.code == .invalidSize)
            }
        }
        leaks.expectClean()
        try memory.create(size: 1024)
        leaks.remember()
        #expect(memory.isAttached)
        #expect(memory.size == 1024)
        #expect(memory.data != nil)
        // Existing: AlreadyExists, from another object.
        let second = SharedMemory(key: key)
        do {
            try second.create(size: 1024)
            Issue.record("second create succeeded")
        } catch {
            #expect(error.code == .alreadyExists)
        }
        #expect(second.key == key, "the key is preserved")
        try memory.detach()
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func attach(backend: Backend) throws {
        let null = SharedMemory(key: NativeIPCKey("", type: backend.type))
        do { try null.attach(); Issue.record("attach on a null key succeeded") } catch { #expect(error.code == .keyError) }

        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let missing = SharedMemory(key: key)
        do { try missing.attach(); Issue.record("attach on a missing key succeeded") } catch {
            #expect(error.code == .notFound)
            #expect(!error.description.isEmpty)
        }
        #expect(throws: SharedMemoryError.self) { try missing.detach() }
        leaks.expectClean()

        let existing = SharedMemory(key: key)
        try existing.create(size: 1024)
        leaks.remember()
        let other = SharedMemory(key: key)
        try other.attach()
        #expect(other.size == 1024)
        try other.detach()
        #expect(other.size == 0)
        #expect(other.data == nil)
        try other.attach()
        try other.detach()
        try existing.detach()
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func lock(backend: Backend) throws {
        let unkeyed = SharedMemory(key: NativeIPCKey("", type: backend.type))
        do { try unkeyed.lock(); Issue.record("lock without a key succeeded") } catch { #expect(error.code == .lockError) }
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let memory = SharedMemory(key: key)
        do { try memory.lock(); Issue.record("lock before create succeeded") } catch { #expect(error.code == .lockError) }
        try memory.create(size: 100)
        leaks.remember()
        try memory.lock()
        try memory.lock()  // a second lock through the same object: true, as in Qt
        try memory.unlock()
        do { try memory.unlock(); Issue.record("unlock of a free lock succeeded") } catch { #expect(error.code == .lockError) }
        try memory.detach()
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func detachWhileLockedReleasesTheLock(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        let keeper = SharedMemory(key: key)
        try keeper.create(size: 64)
        leaks.remember()
        let memory = SharedMemory(key: key)
        try memory.attach()
        try memory.lock()
        try memory.detach()  // Qt: detach while locked releases the caller's lock
        #expect(try keeper.tryLock())
        try keeper.unlock()
        try keeper.detach()
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func removeWhileAttached(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        var leaks = LeakCheck(key)
        do {
            let creator = SharedMemory(key: key)
            try creator.create(size: 1024)
            leaks.remember()
            let attacher = SharedMemory(key: key)
            try attacher.attach()
        }  // both objects go away: their deinit detaches
        let late = SharedMemory(key: key)
        do { try late.attach(); Issue.record("attach after every object went away succeeded") } catch {
            #expect(error.code == .notFound)
        }
        // Qt needs a manual shm_unlink on POSIX here; ours removed the segment at the last detach.
        leaks.expectClean()
    }

    @Test(arguments: Backend.allCases)
    func emptyMemory(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        try memory.create(size: 1024, access: .readOnly)
        #expect(memory.accessMode == .readOnly)
        #expect(try memory.read(at: 0, count: 1024).allSatisfy { $0 == 0 })
        try memory.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func readOnlyRefusesCheckedWrites(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        try memory.create(size: 1024, access: .readOnly)
        do { try memory.write([1], at: 0); Issue.record("write to a read-only segment succeeded") } catch {
            #expect(error.code == .permissionDenied)
        }
        do { _ = try memory.read(at: 1020, count: 8); Issue.record("read past the end succeeded") } catch {
            #expect(error.code == .invalidSize)
        }
        try memory.detach()
        #expect(Traces.of(key).isEmpty)
    }

    /// Qt's `readonly_segfault` helper: a raw write into a read-only attachment must crash.
    @Test(arguments: Backend.allCases)
    func readOnlyRawWriteFaults(backend: Backend) async throws {
        let name = TestEnvironment.uniqueName()
        let key = NativeIPCKey.legacy(name, type: backend.type)
        let creator = SharedMemory(key: key)
        try creator.create(size: 1024)
        let keyString = key.toString()!
        await #expect(processExitsWith: .signal(SIGSEGV)) { [keyString = keyString as String] in
            let memory = SharedMemory(key: NativeIPCKey(string: keyString)!)
            try memory.attach(.readOnly)
            memory.data!.storeBytes(of: 1, as: UInt8.self)
        }
        try creator.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func attachBeforeCreate(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        #expect(throws: SharedMemoryError.self) { try memory.attach() }
        try memory.create(size: 100)
        try memory.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases, [SharedMemory.AccessMode.readOnly, .readWrite])
    func simpleProducerConsumer(backend: Backend, mode: SharedMemory.AccessMode) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let producer = SharedMemory(key: key)
        try producer.create(size: 512)
        let consumer = SharedMemory(key: key)
        try consumer.attach(mode)
        #expect(producer.data!.baseAddress != consumer.data!.baseAddress)
        let text = Array("Hello, shared world".utf8)
        try producer.write(text, at: 3)
        #expect(try consumer.read(at: 3, count: text.count) == text)
        try consumer.detach()
        try producer.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func simpleDoubleProducerConsumer(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let producer = SharedMemory(key: key)
        try producer.create(size: 4096)
        try producer.detach()
        // Qt needs a manual shm_unlink here on POSIX; ours already removed it.
        try producer.create(size: 4096)
        let consumer = SharedMemory(key: key)
        try consumer.attach()
        try consumer.detach()
        try producer.detach()
        #expect(Traces.of(key).isEmpty)
    }

    @Test(arguments: Backend.allCases)
    func sizeIsExact(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        try memory.create(size: 4097)
        #expect(memory.size == 4097, "Linux reports the requested size, not a page multiple")
        let other = SharedMemory(key: key)
        try other.attach()
        #expect(other.size == 4097)
        try other.detach()
        try memory.detach()
    }

    /// tst_qsharedmemory::useTooMuchMemory, as an error at create time: the POSIX segment is fully allocated
    /// (posix_fallocate), so a size larger than /dev/shm fails with OutOfResources instead of a later SIGBUS.
    @Test func tooMuchMemoryIsAnErrorAtCreate() throws {
        var fs = statvfs()
        try #require(statvfs("/dev/shm", &fs) == 0)
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        let key = TestEnvironment.uniqueKey(.posixRealtime)
        let memory = SharedMemory(key: key)
        do {
            try memory.create(size: free + 1 << 30)
            Issue.record("create(\(free + 1 << 30)) succeeded on a /dev/shm with \(free) bytes free")
            try? memory.detach()
        } catch {
            #expect(error.code == .outOfResources)
            #expect(error.call == "posix_fallocate")
        }
        #expect(Traces.of(key).isEmpty, "a failed create leaves nothing")
    }

    @Test func systemVRefusesHugeSizes() throws {
        let key = TestEnvironment.uniqueKey(.systemV)
        let memory = SharedMemory(key: key)
        do {
            try memory.create(size: Int.max / 2)
            Issue.record("create(Int.max/2) succeeded")
        } catch {
            #expect([.invalidSize, .outOfResources].contains(error.code))
        }
        #expect(Traces.of(key).isEmpty)
    }

    /// tst_qsharedmemory::createWithSameKey (QTBUG-111855): a second create fails, its attach works, repeatedly.
    @Test(arguments: Backend.allCases)
    func createWithSameKey(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let first = SharedMemory(key: key)
        try first.create(size: 100)
        for _ in 0..<2 {
            let second = SharedMemory(key: key)
            #expect(throws: SharedMemoryError.self) { try second.create(size: 100) }
            try second.attach()
            try second.detach()
        }
        try first.detach()
        #expect(Traces.of(key).isEmpty)
    }

    /// tst_qsharedmemory::changeKeyType: the same name under another type is another object.
    @Test func changeKeyType() throws {
        let name = TestEnvironment.uniqueName()
        let systemV = SharedMemory(key: .legacy(name, type: .systemV))
        try systemV.create(size: 64)
        let posix = SharedMemory(key: .legacy(name, type: .posixRealtime))
        do { try posix.attach(); Issue.record("POSIX attach found a System V segment") } catch {
            #expect(error.code == .notFound)
        }
        let otherID = SharedMemory(key: .legacy(name, type: .systemV(projectID: 84)))
        do { try otherID.attach(); Issue.record("ftok id 'T' found the 'Q' segment") } catch {
            #expect(error.code == .notFound)
        }
        try systemV.detach()
    }

    @Test(arguments: Backend.allCases)
    func errorsNameTheCallAndTheKey(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        do { try memory.attach(); Issue.record("attach succeeded") } catch {
            let text = error.description
            #expect(text.hasPrefix("attach: "))
            #expect(text.contains("not-found"))
            #expect(text.contains("ENOENT"))
            #expect(text.contains(key.toString()!))
        }
    }

    @Test(arguments: Backend.allCases)
    func segmentsAreCreated0600(backend: Backend) throws {
        let key = TestEnvironment.uniqueKey(backend.type)
        let memory = SharedMemory(key: key)
        try memory.create(size: 64)
        defer { try? memory.detach() }
        if backend == .posix {
            var st = stat()
            try #require(stat("/dev/shm" + key.nativeKey, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o600)
        } else {
            let ipcKey = try #require(Traces.ftokKey(key))
            let id = shmget(ipcKey, 0, 0)
            try #require(id >= 0)
            var ds = shmid_ds()
            try #require(shmctl(id, IPC_STAT, &ds) == 0)
            #expect(ds.shm_perm.mode & 0o777 == 0o600)
            var st = stat()
            try #require(stat(key.nativeKey, &st) == 0)
            #expect(st.st_mode & 0o777 == 0o640, "the key file is 0640, as Qt makes it")
        }
    }
}
