import ArgumentParser
import Atomics
import CBench
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

// The cases of `shm-harness bench`. Each makes its own objects under names with this process's pid and
// removes them when done.

extension BenchCase {
    static func all(quick: Bool) -> [BenchCase] {
        var cases: [BenchCase] = [
            lockSegment(systemV: true), lockSegment(systemV: false), lockFutex(), lockRobust(), lockFile(),
            attachDetach(systemV: true), attachDetach(systemV: false), attachDetachCrowded(quick: quick),
            createDestroy(systemV: true), createDestroy(systemV: false), memfdSealMap(), firstTouch(quick: quick),
            pingPong(blocking: false, quick: quick), pingPong(blocking: true, quick: quick), allocationControl(),
        ]
        for kind in CounterKind.allCases {
            for processes in [2, 4, 16] { cases.append(counter(kind, processes: processes, quick: quick)) }
        }
        return cases + runnerCases(quick: quick)
    }

    /// A shared anonymous page for in-process lock cases.
    static func sharedPage() -> UnsafeMutableRawBufferPointer {
        let p = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        return UnsafeMutableRawBufferPointer(start: p, count: 4096)
    }

    static func segmentKey(systemV: Bool, _ what: String) -> NativeIPCKey {
        systemV
            ? NativeIPCKey("/tmp/" + benchName(what), type: .systemV)
            : NativeIPCKey("/" + benchName(what), type: .posixRealtime)
    }

    static func ftokKey(_ path: String) -> key_t { ftok(path, 0x51) }

    /// Creates a segment under a fresh key; another name if the key is taken (System V keys come from the key
    /// file's inode, which a stranger's leftover segment may share).
    static func createSegment(systemV: Bool, _ what: String, size: Int) throws -> (NativeIPCKey, SharedMemory) {
        var attempt = 0
        while true {
            let key = segmentKey(systemV: systemV, attempt == 0 ? what : "\(what)\(attempt)")
            let memory = SharedMemory(key: key)
            var failure: SharedMemoryError?
            do throws(SharedMemoryError) {
                try memory.create(size: size)
            } catch {
                failure = error
            }
            guard let failure else { return (key, memory) }
            guard failure.code == .alreadyExists, attempt < 20 else { throw failure }
            attempt += 1
        }
    }

    static func lockSegment(systemV: Bool) -> BenchCase {
        let backend = systemV ? "sysv" : "posix"
        return BenchCase(
            name: "lock-\(backend)",
            summary: systemV
                ? "SharedMemory lock()+unlock(), System V, vs semop -1/+1 with SEM_UNDO"
                : "SharedMemory lock()+unlock(), POSIX, vs sem_wait/sem_post",
            unit: "lock+unlock"
        ) {
            let (key, memory) = try createSegment(systemV: systemV, "lock", size: 4096)
            let keyString = key.toString()!
            guard let peer = cbench_shmh_segment_open(keyString, 0) else {
                throw CommandFailure(message: "libshmh attach \(keyString): \(String(cString: strerror(errno)))")
            }
            var floor: BenchVariant
            var closeFloor: () -> Void = {}
            if systemV {
                let semid = semget(ftokKey(key.lockSemaphoreKey().nativeKey), 0, 0)
                guard semid >= 0 else { throw CommandFailure(message: "semget: \(String(cString: strerror(errno)))") }
                floor = BenchVariant(label: "c: semop SEM_UNDO", role: .floor) { n in try checked("semop", cbench_semop_pair(semid, n)) }
            } else {
                guard let sem = cbench_sem_open(key.lockSemaphoreKey().nativeKey) else {
                    throw CommandFailure(message: "sem_open: \(String(cString: strerror(errno)))")
                }
                floor = BenchVariant(label: "c: sem_wait/sem_post", role: .floor) { n in try checked("sem_wait", cbench_sem_pair(sem, n)) }
                closeFloor = { cbench_sem_close(sem) }
            }
            let library = BenchVariant(label: "swift: SharedMemory", role: .library, measure: { n in
                let start = benchNow()
                for _ in 0..<n {
                    try memory.lock()
                    try memory.unlock()
                }
                return benchNow() - start
            }, countAllocations: true)
            let shmh = BenchVariant(label: "c: libshmh segment", role: .libshmh) { n in try checked("libshmh lock", cbench_shmh_lock_pair(peer, n)) }
            return ([library, floor, shmh], [qtUnavailable], [], {
                closeFloor()
                cbench_shmh_segment_free(peer)
                try? memory.detach()
            })
        }
    }

    static func lockFutex() -> BenchCase {
        BenchCase(name: "lock-futex", summary: "FutexLock lock()+unlock() vs a C futex word (Drepper)", unit: "lock+unlock") {
            let page = sharedPage()
            let lock = try FutexLock(initializingAt: 0, in: page)
            _ = try FutexLock(initializingAt: 128, in: page)  // libshmh's area: the same layout
            let word = (page.baseAddress! + 256).assumingMemoryBound(to: UInt32.self)
            let library = BenchVariant(label: "swift: FutexLock", role: .library, measure: { n in
                let start = benchNow()
                for _ in 0..<n {
                    try lock.lock()
                    try lock.unlock()
                }
                return benchNow() - start
            }, countAllocations: true)
            let floor = BenchVariant(label: "c: futex word", role: .floor) { n in cbench_futex_pair(word, n) }
            let shmh = BenchVariant(label: "c: libshmh futex", role: .libshmh) { n in
                try checked("libshmh futex", cbench_shmh_futex_pair(page.baseAddress! + 128, n))
            }
            return ([library, floor, shmh], [qtUnavailable], [], { munmap(page.baseAddress, 4096) })
        }
    }

    static func lockRobust() -> BenchCase {
        BenchCase(name: "lock-robust", summary: "RobustMutex lock()+unlock() vs a robust process-shared pthread mutex", unit: "lock+unlock") {
            let page = sharedPage()
            let mutex = try RobustMutex(initializingAt: 0, in: page)
            let raw = page.baseAddress! + 256
            guard cbench_robust_mutex_init(raw) == 0 else { throw CommandFailure(message: "pthread_mutex_init failed") }
            let library = BenchVariant(label: "swift: RobustMutex", role: .library, measure: { n in
                let start = benchNow()
                for _ in 0..<n {
                    try mutex.lock()
                    try mutex.unlock()
                }
                return benchNow() - start
            }, countAllocations: true)
            let floor = BenchVariant(label: "c: pthread robust mutex", role: .floor) { n in try checked("mutex", cbench_mutex_pair(raw, n)) }
            return ([library, floor], [qtUnavailable], [], { munmap(page.baseAddress, 4096) })
        }
    }

    static func lockFile() -> BenchCase {
        BenchCase(name: "lock-lockfile", summary: "LockFile lock()+unlock() vs fcntl(F_OFD_SETLKW / F_UNLCK)", unit: "lock+unlock") {
            let path = "/tmp/" + benchName("lockfile")
            let file = try LockFile(path: path)
            let fd = open(path + ".c", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
            guard fd >= 0 else { throw CommandFailure(message: "open \(path).c: \(String(cString: strerror(errno)))") }
            let library = BenchVariant(label: "swift: LockFile", role: .library, measure: { n in
                let start = benchNow()
                for _ in 0..<n {
                    try file.lock()
                    try file.unlock()
                }
                return benchNow() - start
            }, countAllocations: true)
            let floor = BenchVariant(label: "c: fcntl OFD lock", role: .floor) { n in try checked("fcntl", cbench_ofd_pair(fd, n)) }
            return ([library, floor], [("qt", .qt, "Qt has no lock file of this kind (QLockFile writes a pid file)")], [], {
                file.remove()
                close(fd)
                unlink(path + ".c")
            })
        }
    }

    static func attachDetach(systemV: Bool) -> BenchCase {
        let backend = systemV ? "sysv" : "posix"
        return BenchCase(
            name: "attach-\(backend)",
            summary: systemV
                ? "SharedMemory attach()+detach() of an existing System V segment vs shmget+shmat+shmdt"
                : "SharedMemory attach()+detach() of an existing POSIX segment vs shm_open+fstat+mmap+munmap+close",
            unit: "attach+detach"
        ) {
            let (key, holder) = try createSegment(systemV: systemV, "attach", size: 65536)
            let keyString = key.toString()!
            let visitor = SharedMemory(key: key)
            let library = BenchVariant(label: "swift: SharedMemory", role: .library) { n in
                let start = benchNow()
                for _ in 0..<n {
                    try visitor.attach()
                    try visitor.detach()
                }
                return benchNow() - start
            }
            var variants = [library]
            if systemV {
                let ipcKey = ftokKey(key.nativeKey)
                variants.append(BenchVariant(label: "c: shmget+shmat+shmdt", role: .floor) { n in
                    try checked("shmat", cbench_sysv_attach_detach(ipcKey, n))
                })
            } else {
                variants.append(BenchVariant(label: "c: shm_open..close", role: .floor) { n in
                    try checked("shm_open", cbench_posix_attach_detach(key.nativeKey, 0, n))
                })
                variants.append(BenchVariant(label: "c: the same + OFD record", role: .info) { n in
                    try checked("shm_open", cbench_posix_attach_detach(key.nativeKey, 1, n))
                })
            }
            variants.append(BenchVariant(label: "c: libshmh (same protocol)", role: .libshmh) { n in
                try checked("libshmh attach", cbench_shmh_attach_detach(keyString, n))
            })
            return (variants, [qtUnavailable], [], { try? holder.detach() })
        }
    }

    /// attach-posix with 200 idle processes of this user running: the cost must not grow with them.
    static func attachDetachCrowded(quick: Bool) -> BenchCase {
        BenchCase(name: "attach-posix-crowd", summary: "attach-posix with 200 more idle processes of this user", unit: "attach+detach") {
            let (key, holder) = try createSegment(systemV: false, "crowd", size: 65536)
            var children: [pid_t] = []
            for _ in 0..<200 {
                let pid = fork()
                if pid == 0 {
                    while true { pause() }
                }
                if pid > 0 { children.append(pid) }
            }
            let visitor = SharedMemory(key: key)
            let library = BenchVariant(label: "swift: SharedMemory", role: .library) { n in
                let start = benchNow()
                for _ in 0..<n {
                    try visitor.attach()
                    try visitor.detach()
                }
                return benchNow() - start
            }
            let floor = BenchVariant(label: "c: shm_open..close", role: .floor) { n in
                try checked("shm_open", cbench_posix_attach_detach(key.nativeKey, 0, n))
            }
            let record = BenchVariant(label: "c: the same + OFD record", role: .info) { n in
                try checked("shm_open", cbench_posix_attach_detach(key.nativeKey, 1, n))
            }
            return ([library, floor, record], [], ["\(children.count) idle processes"], {
                for pid in children { kill(pid, SIGKILL) }
                for pid in children { var status: Int32 = 0; waitpid(pid, &status, 0) }
                try? holder.detach()
            })
        }
    }

    static func createDestroy(systemV: Bool) -> BenchCase {
        let backend = systemV ? "sysv" : "posix"
        return BenchCase(
            name: "create-\(backend)",
            summary: systemV
                ? "SharedMemory create(64 KiB)+detach() (removes it), System V, vs shmget(IPC_CREAT)+shmat+shmdt+IPC_RMID"
                : "SharedMemory create(64 KiB)+detach() (removes it), POSIX, vs shm_open+posix_fallocate+mmap+munmap+close+shm_unlink",
            unit: "create+destroy"
        ) {
            let size = 65536
            let key = segmentKey(systemV: systemV, "create")
            let cKey = segmentKey(systemV: systemV, "create-c")
            let keyString = segmentKey(systemV: systemV, "create-shmh").toString()!
            let memory = SharedMemory(key: key)
            let library = BenchVariant(label: "swift: SharedMemory", role: .library) { n in
                let start = benchNow()
                for _ in 0..<n {
                    try memory.create(size: size)
                    try memory.detach()
                }
                return benchNow() - start
            }
            var floor: BenchVariant
            var cleanUp: () -> Void = {}
            if systemV {
                let fd = open(cKey.nativeKey, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else { throw CommandFailure(message: "open \(cKey.nativeKey): \(String(cString: strerror(errno)))") }
                close(fd)
                let ipcKey = ftokKey(cKey.nativeKey)
                floor = BenchVariant(label: "c: shmget..IPC_RMID", role: .floor) { n in
                    try checked("shmget", cbench_sysv_create_destroy(ipcKey, size, n))
                }
                cleanUp = { unlink(cKey.nativeKey) }
            } else {
                floor = BenchVariant(label: "c: shm_open..shm_unlink", role: .floor) { n in
                    try checked("shm_open", cbench_posix_create_destroy(cKey.nativeKey, size, n))
                }
            }
            let shmh = BenchVariant(label: "c: libshmh", role: .libshmh) { n in
                try checked("libshmh create", cbench_shmh_create_destroy(keyString, size, n))
            }
            return ([library, floor, shmh], [qtUnavailable], [], cleanUp)
        }
    }

    static func memfdSealMap() -> BenchCase {
        BenchCase(
            name: "memfd-seal-map",
            summary: "MemFD create(64 KiB)+addSeals(shrink,grow,seal)+map+unmap+close vs the same system calls",
            unit: "memfd"
        ) {
            let library = BenchVariant(label: "swift: MemFD", role: .library) { n in
                let start = benchNow()
                for _ in 0..<n {
                    let memfd = try MemFD.create(name: "bench", size: 65536)
                    try memfd.addSeals([.shrink, .grow, .seal])
                    let mapping = try memfd.map()
                    try mapping.unmap()
                    memfd.close()
                }
                return benchNow() - start
            }
            let floor = BenchVariant(label: "c: memfd_create..close", role: .floor) { n in
                try checked("memfd", cbench_memfd_seal_map(65536, n))
            }
            return ([library, floor], [("qt", .qt, "Qt has no memfd API")], [], {})
        }
    }

    static func firstTouch(quick: Bool) -> BenchCase {
        let size = quick ? 16 << 20 : 64 << 20
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return BenchCase(
            name: "first-touch",
            summary: "first write to each page of a fresh \(size >> 20) MiB POSIX segment (library vs C mapping)",
            unit: "page"
        ) {
            let key = segmentKey(systemV: false, "touch")
            let pages = size / page
            let library = BenchVariant(label: "swift: SharedMemory data", role: .library, measure: { _ in
                let memory = SharedMemory(key: key)
                try memory.create(size: size)
                defer { try? memory.detach() }
                let bytes = memory.data!
                let start = benchNow()
                var offset = 0
                while offset < size {
                    bytes.storeBytes(of: 1, toByteOffset: offset, as: UInt8.self)
                    offset += page
                }
                return benchNow() - start
            }, fixedOperations: pages)
            let cName = "/" + benchName("touch-c")
            let floor = BenchVariant(label: "c: shm_open+fallocate+mmap", role: .floor, measure: { _ in
                let fd = cbench_shm_create(cName)
                guard fd >= 0 else { throw CommandFailure(message: "shm_open: \(String(cString: strerror(errno)))") }
                defer {
                    close(fd)
                    shm_unlink(cName)
                }
                guard posix_fallocate(fd, 0, off_t(size)) == 0, let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
                      p != MAP_FAILED else { throw CommandFailure(message: "map: \(String(cString: strerror(errno)))") }
                defer { munmap(p, size) }
                return cbench_touch_pages(p, size, page)
            }, fixedOperations: pages)
            return ([library, floor], [qtUnavailable], [], {})
        }
    }

    /// A negative control for the allocation column: rendering the key allocates, and must show.
    static func allocationControl() -> BenchCase {
        BenchCase(name: "alloc-control", summary: "negative control: NativeIPCKey.toString() per operation must count allocations") {
            let key = segmentKey(systemV: true, "control")
            var sink = 0
            let control = BenchVariant(label: "swift: key.description", role: .info, measure: { n in
                let start = benchNow()
                for _ in 0..<n { sink &+= key.description.utf8.count }
                return benchNow() - start
            }, countAllocations: true)
            return ([control], [], [], { _ = sink })
        }
    }
}

// MARK: cross-process cases

enum CounterKind: String, CaseIterable {
    case sysv, posix, futex, robust
    var code: Int32 {
        switch self {
        case .sysv: 1
        case .posix: 2
        case .futex: 3
        case .robust: 4
        }
    }
}

/// The control block at the start of a cross-process case's segment.
enum Control {
    static let ready = 0  // UInt32: workers ready
    static let go = 4  // UInt32: 1 = start
    static let counter = 8  // UInt64: the counter
    static let end = 16  // UInt64: the latest worker's end (monotonic ns)
    static let lockArea = 64  // futex / robust mutex area
    static let size = 4096

    static func u32(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeAtomic<UInt32> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt32.AtomicRepresentation.self))
    }
    static func u64(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UnsafeAtomic<UInt64> {
        UnsafeAtomic(at: (base + offset).assumingMemoryBound(to: UInt64.AtomicRepresentation.self))
    }
}

/// Spawns this executable as `bench-worker ARGS`.
func spawnBenchWorker(_ arguments: [String]) throws -> pid_t {
    let exe = "/proc/self/exe"
    var target = [CChar](repeating: 0, count: 4096)
    let n = readlink(exe, &target, 4095)
    guard n > 0 else { throw CommandFailure(message: "readlink /proc/self/exe failed") }
    let path = String(decoding: target[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let argv = [path, "bench-worker"] + arguments
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, nil, nil, &cArgs, environ)
    guard rc == 0 else { throw CommandFailure(message: "posix_spawn: \(String(cString: strerror(rc)))") }
    return pid
}

func waitAll(_ pids: [pid_t]) throws {
    var failed = 0
    for pid in pids {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        if status != 0 { failed += 1 }
    }
    if failed > 0 { throw CommandFailure(message: "\(failed) bench worker(s) failed") }
}

extension BenchCase {
    static func counter(_ kind: CounterKind, processes: Int, quick: Bool) -> BenchCase {
        let semaphoreKind = kind == .sysv || kind == .posix
        let total = (semaphoreKind ? 20_000 : 200_000) * (quick ? 1 : 5)
        let perWorker = total / processes
        let what: String
        switch kind {
        case .sysv: what = "SharedMemory lock (System V) vs semop SEM_UNDO"
        case .posix: what = "SharedMemory lock (POSIX) vs sem_wait/sem_post"
        case .futex: what = "FutexLock vs a C futex word"
        case .robust: what = "RobustMutex vs a robust pthread mutex"
        }
        return BenchCase(
            name: "counter-\(kind.rawValue)-\(processes)",
            summary: "\(processes) processes add to one counter, \(what)",
            unit: "increment",
            crossProcess: true
        ) {
            let (key, memory) = try createSegment(systemV: kind == .sysv, "counter", size: Control.size)
            let base = memory.data!.baseAddress!
            if kind == .futex { _ = try FutexLock(initializingAt: Control.lockArea, in: memory.data!) }
            if kind == .robust { _ = try RobustMutex(initializingAt: Control.lockArea, in: memory.data!) }
            let keyString = key.toString()!
            func sample(_ impl: String) throws -> Int64 {
                Control.u32(base, Control.ready).store(0, ordering: .relaxed)
                Control.u32(base, Control.go).store(0, ordering: .relaxed)
                Control.u64(base, Control.counter).store(0, ordering: .relaxed)
                Control.u64(base, Control.end).store(0, ordering: .relaxed)
                var pids: [pid_t] = []
                for _ in 0..<processes {
                    pids.append(try spawnBenchWorker(["counter", kind.rawValue, impl, keyString, String(perWorker)]))
                }
                let deadline = benchNow() + 60_000_000_000
                while Control.u32(base, Control.ready).load(ordering: .acquiring) < processes {
                    if benchNow() > deadline {
                        for pid in pids { kill(pid, SIGKILL) }
                        try? waitAll(pids)
                        throw CommandFailure(message: "bench workers did not start")
                    }
                    usleep(500)
                }
                let start = benchNow()
                Control.u32(base, Control.go).store(1, ordering: .releasing)
                try waitAll(pids)
                let end = Int64(Control.u64(base, Control.end).load(ordering: .acquiring))
                let counted = Control.u64(base, Control.counter).load(ordering: .acquiring)
                if counted != UInt64(perWorker * processes) {
                    throw CommandFailure(message: "WRONG: the counter is \(counted), expected \(perWorker * processes)")
                }
                return end - start
            }
            let library = BenchVariant(label: "swift workers", role: .library, measure: { _ in try sample("swift") }, fixedOperations: perWorker * processes)
            let floor = BenchVariant(label: "c workers", role: .floor, measure: { _ in try sample("c") }, fixedOperations: perWorker * processes)
            return ([library, floor], [qtUnavailable], ["\(perWorker) increments per process; the counter is checked"], {
                try? memory.detach()
            })
        }
    }

    static func pingPong(blocking: Bool, quick: Bool) -> BenchCase {
        let rounds = (blocking ? 20_000 : 200_000) * (quick ? 1 : 5)
        return BenchCase(
            name: blocking ? "pingpong-blocking" : "pingpong-spin",
            summary: blocking
                ? "two processes pass a turn through two POSIX SystemSemaphores vs sem_wait/sem_post"
                : "two processes pass a turn through an atomic word in a POSIX segment, spinning",
            unit: "round trip",
            crossProcess: true
        ) {
            let (key, memory) = try createSegment(systemV: false, "pingpong", size: Control.size)
            let base = memory.data!.baseAddress!
            let keyString = key.toString()!
            let semA = NativeIPCKey("/" + benchName("ping"), type: .posixRealtime)
            let semB = NativeIPCKey("/" + benchName("pong"), type: .posixRealtime)
            let ping = try SystemSemaphore(key: semA, initialValue: 0, mode: .create)
            let pong = try SystemSemaphore(key: semB, initialValue: 0, mode: .create)
            let cPing = cbench_sem_open(semA.nativeKey)
            let cPong = cbench_sem_open(semB.nativeKey)
            guard let cPing, let cPong else { throw CommandFailure(message: "sem_open: \(String(cString: strerror(errno)))") }
            func sample(_ impl: String) throws -> Int64 {
                Control.u32(base, Control.ready).store(0, ordering: .relaxed)
                Control.u32(base, Control.counter).store(0, ordering: .relaxed)
                let pid = try spawnBenchWorker(["pingpong", blocking ? "blocking" : "spin", impl, keyString, semA.toString()!, semB.toString()!, String(rounds)])
                let deadline = benchNow() + 60_000_000_000
                while Control.u32(base, Control.ready).load(ordering: .acquiring) < 1 {
                    if benchNow() > deadline {
                        kill(pid, SIGKILL)
                        try? waitAll([pid])
                        throw CommandFailure(message: "the ping-pong worker did not start")
                    }
                    usleep(200)
                }
                let elapsed: Int64
                if impl == "swift" {
                    elapsed = try pingPongSide(0, blocking: blocking, base: base, mine: pong, other: ping, rounds: rounds)
                } else if blocking {
                    elapsed = cbench_sem_pingpong(cPong, cPing, 0, rounds)
                } else {
                    elapsed = cbench_pingpong((base + Control.counter).assumingMemoryBound(to: UInt32.self), 0, 0, rounds)
                }
                try waitAll([pid])
                return try checked("ping-pong", elapsed)
            }
            let library = BenchVariant(label: blocking ? "swift: SystemSemaphore" : "swift: atomics", role: .library, measure: { _ in try sample("swift") }, fixedOperations: rounds)
            let floor = BenchVariant(label: blocking ? "c: sem_wait/sem_post" : "c: atomics", role: .floor, measure: { _ in try sample("c") }, fixedOperations: rounds)
            return ([library, floor], [qtUnavailable], ["\(rounds) round trips per sample"], {
                cbench_sem_close(cPing)
                cbench_sem_close(cPong)
                ping.close()
                pong.close()
                try? memory.detach()
            })
        }
    }
}

/// One side of the Swift ping-pong. Side 0 starts.
func pingPongSide(
    _ side: Int, blocking: Bool, base: UnsafeMutableRawPointer, mine: SystemSemaphore, other: SystemSemaphore, rounds: Int
) throws -> Int64 {
    let word = Control.u32(base, Control.counter)
    let start = benchNow()
    for r in 0..<rounds {
        if blocking {
            if side == 0 {
                try other.release()
                try mine.acquire()
            } else {
                try mine.acquire()
                try other.release()
            }
        } else {
            let turn = UInt32(truncatingIfNeeded: 2 * r + side)
            while word.load(ordering: .acquiring) != turn {}
            word.store(turn &+ 1, ordering: .releasing)
        }
    }
    return benchNow() - start
}

/// The hidden worker of the cross-process bench cases.
struct BenchWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-worker", abstract: "One process of a cross-process bench case (started by `bench`).", shouldDisplay: false)

    @Argument var arguments: [String] = []

    func run() throws {
        guard let mode = arguments.first else { throw CommandFailure(message: "bench-worker: no mode", exitCode: 2) }
        switch mode {
        case "counter" where arguments.count == 5:
            try counter(kind: CounterKind(rawValue: arguments[1]), impl: arguments[2], keyString: arguments[3], iterations: Int(arguments[4]))
        case "loop" where arguments.count == 4:
            // One variant of an in-process case, n operations, nothing else: for `strace -c` (scripts/bench-syscalls.sh).
            guard let item = BenchCase.all(quick: true).first(where: { $0.name == arguments[1] }),
                  let n = Int(arguments[3]), n >= 0 else {
                throw CommandFailure(message: "bench-worker loop: unknown case \(arguments[1]) or count", exitCode: 2)
            }
            let made = try item.setUp()
            defer { made.cleanUp() }
            guard let variant = made.variants.first(where: { $0.role.rawValue == arguments[2] }) else {
                throw CommandFailure(message: "bench-worker loop: \(item.name) has no \(arguments[2]) variant", exitCode: 2)
            }
            _ = try variant.measure(n)
        case "pingpong" where arguments.count == 7:
            try pingPong(blocking: arguments[1] == "blocking", impl: arguments[2], keyString: arguments[3], semA: arguments[4], semB: arguments[5], rounds: Int(arguments[6]))
        default:
            throw CommandFailure(message: "bench-worker: bad arguments \(arguments)", exitCode: 2)
        }
    }

    /// Waits for the start signal (ready +1, then go).
    func barrier(_ base: UnsafeMutableRawPointer) {
        Control.u32(base, Control.ready).wrappingIncrement(ordering: .releasing)
        while Control.u32(base, Control.go).load(ordering: .acquiring) == 0 { sched_yield() }
    }

    func recordEnd(_ base: UnsafeMutableRawPointer) {
        let end = UInt64(benchNow())
        let field = Control.u64(base, Control.end)
        var seen = field.load(ordering: .relaxed)
        while seen < end {
            let (exchanged, original) = field.compareExchange(expected: seen, desired: end, ordering: .acquiringAndReleasing)
            if exchanged { break }
            seen = original
        }
    }

    func counter(kind: CounterKind?, impl: String, keyString: String, iterations: Int?) throws {
        guard let kind, let iterations, let key = NativeIPCKey(string: keyString) else {
            throw CommandFailure(message: "bench-worker: bad counter arguments", exitCode: 2)
        }
        let memory = SharedMemory(key: key)
        try memory.attach()
        defer { try? memory.detach() }
        let base = memory.data!.baseAddress!
        let counter = (base + Control.counter).assumingMemoryBound(to: UInt64.self)
        if impl == "swift" {
            switch kind {
            case .sysv, .posix:
                barrier(base)
                for _ in 0..<iterations {
                    try memory.lock()
                    counter.pointee &+= 1
                    try memory.unlock()
                }
            case .futex:
                let lock = try FutexLock(at: Control.lockArea, in: memory.data!)
                barrier(base)
                for _ in 0..<iterations {
                    try lock.lock()
                    counter.pointee &+= 1
                    try lock.unlock()
                }
            case .robust:
                let mutex = try RobustMutex(at: Control.lockArea, in: memory.data!)
                barrier(base)
                for _ in 0..<iterations {
                    try mutex.lock()
                    counter.pointee &+= 1
                    try mutex.unlock()
                }
            }
            recordEnd(base)
            return
        }
        // C: the raw objects behind the same segment
        var semid: Int32 = -1
        var sem: UnsafeMutableRawPointer?
        switch kind {
        case .sysv:
            semid = semget(ftok(key.lockSemaphoreKey().nativeKey, 0x51), 0, 0)
            guard semid >= 0 else { throw CommandFailure(message: "semget: \(String(cString: strerror(errno)))") }
        case .posix:
            sem = cbench_sem_open(key.lockSemaphoreKey().nativeKey)
            guard sem != nil else { throw CommandFailure(message: "sem_open: \(String(cString: strerror(errno)))") }
        case .futex, .robust: break
        }
        defer { if let sem { cbench_sem_close(sem) } }
        barrier(base)
        let lockPointer = base + Control.lockArea + 16
        guard cbench_counter(kind.code, semid, sem, lockPointer, counter, iterations) >= 0 else {
            throw CommandFailure(message: "counter: \(String(cString: strerror(errno)))")
        }
        recordEnd(base)
    }

    func pingPong(blocking: Bool, impl: String, keyString: String, semA: String, semB: String, rounds: Int?) throws {
        guard let rounds, let key = NativeIPCKey(string: keyString), let a = NativeIPCKey(string: semA),
              let b = NativeIPCKey(string: semB) else {
            throw CommandFailure(message: "bench-worker: bad ping-pong arguments", exitCode: 2)
        }
        let memory = SharedMemory(key: key)
        try memory.attach()
        defer { try? memory.detach() }
        let base = memory.data!.baseAddress!
        let ping = try SystemSemaphore(key: a)
        let pong = try SystemSemaphore(key: b)
        let cPing = cbench_sem_open(a.nativeKey)
        let cPong = cbench_sem_open(b.nativeKey)
        defer {
            if let cPing { cbench_sem_close(cPing) }
            if let cPong { cbench_sem_close(cPong) }
            ping.close(removeIfUnused: false)
            pong.close(removeIfUnused: false)
        }
        Control.u32(base, Control.ready).wrappingIncrement(ordering: .releasing)
        if impl == "swift" {
            _ = try pingPongSide(1, blocking: blocking, base: base, mine: ping, other: pong, rounds: rounds)
        } else if blocking {
            guard cbench_sem_pingpong(cPing, cPong, 1, rounds) >= 0 else { throw CommandFailure(message: "sem ping-pong failed") }
        } else {
            _ = cbench_pingpong((base + Control.counter).assumingMemoryBound(to: UInt32.self), 1, 0, rounds)
        }
    }
}
