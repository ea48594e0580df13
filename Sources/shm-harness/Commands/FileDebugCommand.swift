import ArgumentParser
import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Hidden helpers for the file-sharing tests (mapped files, memfd, locks inside the memory), run as
/// separate processes. Output is `key=value` or single-word lines, flushed at once.
struct FileDebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "file-debug",
        abstract: "Helper operations for the file-sharing tests.",
        shouldDisplay: false,
        subcommands: [Add.self, Hold.self, ProbeLock.self, ReadLoop.self, MapWrite.self, MemFDInfo.self]
    )

    enum Kind: String, ExpressibleByArgument, CaseIterable {
        case futex, robustMutex = "robust-mutex", lockfile
    }

    /// The shared data the counter helpers use: the lock area at OFFSET, then `counter` and `check` (u64)
    /// at OFFSET+64 and OFFSET+72. `check == counter` whenever no update is half-done.
    struct Target: ParsableArguments {
        @Option(help: "The mapped file.") var file: String
        @Option(help: "futex, robust-mutex or lockfile.") var lock: Kind
        @Option(help: "Offset of the lock area.") var offset: Int = 0
    }

    /// A file mapped shared, its lock, and the two counters.
    final class Counter {
        let file: MappedFile
        let mapping: FileMapping
        let futex: FutexLock?
        let mutex: RobustMutex?
        let lockFile: LockFile?
        let data: UnsafeMutableRawPointer
        private(set) var repairs = 0

        init(_ target: Target) throws {
            file = try MappedFile.open(at: target.file)
            mapping = try file.map()
            switch target.lock {
            case .futex: (futex, mutex, lockFile) = (try FutexLock(at: target.offset, in: mapping.bytes), nil, nil)
            case .robustMutex: (futex, mutex, lockFile) = (nil, try RobustMutex(at: target.offset, in: mapping.bytes), nil)
            case .lockfile: (futex, mutex, lockFile) = (nil, nil, try LockFile(forResourceAt: target.file))
            }
            data = mapping.baseAddress + target.offset + 64
        }

        var counter: UInt64 {
            get { data.load(as: UInt64.self) }
            set { data.storeBytes(of: newValue, as: UInt64.self) }
        }
        var check: UInt64 {
            get { data.load(fromByteOffset: 8, as: UInt64.self) }
            set { data.storeBytes(of: newValue, toByteOffset: 8, as: UInt64.self) }
        }

        /// Locks; after a dead owner, rolls the half-done update back and marks the mutex consistent.
        func lock(timeout: Duration? = nil) throws {
            do {
                if let futex { try timeout.map { try futex.lock(timeout: $0) } ?? futex.lock() }
                if let mutex { try timeout.map { try mutex.lock(timeout: $0) } ?? mutex.lock() }
                if let lockFile { try timeout.map { try lockFile.lock(timeout: $0) } ?? lockFile.lock() }
            } catch let error as SharedMemoryError where error.code == .ownerDied {
                counter = check
                repairs += 1
                try mutex!.markConsistent()
            }
        }

        func tryLock() throws {
            if let futex { try futex.tryLock() }
            if let mutex { try mutex.tryLock() }
            if let lockFile { try lockFile.tryLock() }
        }

        func unlock() throws {
            if let futex { try futex.unlock() }
            if let mutex { try mutex.unlock() }
            if let lockFile { try lockFile.unlock() }
        }
    }

    /// N times: lock, counter += 1, check = counter, unlock. With --handshake, after each read of the counter:
    /// say "read VALUE" and wait for a line on stdin before writing (a test forces an interleaving); "locking"
    /// comes before each lock.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add")
        @OptionGroup var target: Target
        @Option var iterations: Int = 1000
        @Flag(help: "Skip the lock (proves that the test can fail).") var noLock = false
        @Flag(help: "Between read and write: say \"read VALUE\", then wait for a line on stdin.") var handshake = false

        func run() throws {
            let shared = try Counter(target)
            for _ in 0..<iterations {
                if handshake { say("locking") }
                if !noLock { try shared.lock(timeout: .seconds(60)) }
                let read = shared.counter
                if handshake {
                    say("read \(read)")
                    _ = readLine()
                }
                let next = read &+ 1
                shared.counter = next
                shared.check = next
                if !noLock { try shared.unlock() }
            }
            say("done \(iterations) repairs=\(shared.repairs)")
        }
    }

    /// Lock, start an update (counter += 1, check not yet), say "locked"; then finish on a line from stdin,
    /// or SIGKILL itself with --crash.
    struct Hold: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "hold")
        @OptionGroup var target: Target
        @Flag(help: "SIGKILL itself while holding the lock, half-way through an update.") var crash = false

        func run() throws {
            let shared = try Counter(target)
            try shared.lock(timeout: .seconds(30))
            shared.counter &+= 1
            say("locked")
            if crash { kill(getpid(), SIGKILL) }
            _ = readLine()
            shared.check = shared.counter
            try shared.unlock()
            say("released")
        }
    }

    /// Try the lock (or wait --timeout seconds) and print `acquired` or the error's name.
    struct ProbeLock: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "probe-lock")
        @OptionGroup var target: Target
        @Option(help: "Seconds to wait; without it, try once.") var timeout: Double?

        func run() throws {
            let shared = try Counter(target)
            do {
                if let timeout { try shared.lock(timeout: .milliseconds(Int(timeout * 1000))) } else { try shared.tryLock() }
                say("acquired repairs=\(shared.repairs)")
                try shared.unlock()
            } catch let error as SharedMemoryError {
                say(error.code.name)
            }
        }
    }

    /// Map a file (or an inherited descriptor) and read it in chunks, round and round, checking the
    /// pattern byte[i] = i % 251, until a bus error or a line on stdin. Then read what is left, and check
    /// that every chunk read before the error is intact.
    struct ReadLoop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "read-loop")
        @Option var file: String?
        @Option(help: "An inherited descriptor (a memfd).") var fd: Int32?
        @Option var chunk: Int = 4096

        func run() throws {
            let mapping: FileMapping
            var keep: AnyObject?
            if let fd {
                let memfd = try MemFD(adopting: FileDescriptor(rawValue: fd), name: "inherited")
                say("seals=\(try memfd.seals())")
                mapping = try memfd.map(writable: false)
                keep = memfd
            } else {
                let file = try MappedFile.open(at: file!)
                mapping = try file.map(writable: false)
                keep = file
            }
            _ = keep
            // The last 4096 chunks read (offset, bytes): after a bus error they must still be intact.
            var kept: [(offset: Int, bytes: [UInt8])] = []
            var offset = 0
            var reads = 0
            var badWhileReading = 0
            var failure: SharedMemoryError?
            let span = mapping.count - mapping.count % chunk
            while failure == nil {
                if reads % 64 == 0 && reads > 0 && lineWaiting() { break }
                do {
                    let bytes = try mapping.read(at: offset, count: chunk)
                    badWhileReading += Self.mismatches(bytes, at: offset)
                    if kept.count < 4096 { kept.append((offset, bytes)) } else { kept[reads % 4096] = (offset, bytes) }
                    reads += 1
                    if reads == span / chunk { say("reading") }
                    offset = (offset + chunk) % span
                } catch {
                    failure = error
                }
            }
            if let failure {
                say("error=\(failure.code.name) reads=\(reads) guard-faults=\(BusGuard.faultsCaught)")
                say("detail=\(failure)")
                let size = try mapping.currentFileSize()
                if size >= chunk { _ = try mapping.read(at: 0, count: chunk) }
                say("still-running size=\(size)")
            } else {
                say("stopped reads=\(reads)")
            }
            let badKept = kept.reduce(0) { $0 + Self.mismatches($1.bytes, at: $1.offset) }
            say("kept=\(kept.count) bad=\(badWhileReading + badKept)")
        }

        /// Bytes that differ from the pattern byte[p] = p % 251.
        static func mismatches(_ bytes: [UInt8], at offset: Int) -> Int {
            var bad = 0
            for (i, byte) in bytes.enumerated() where byte != UInt8((offset + i) % 251) { bad += 1 }
            return bad
        }
    }

    /// Map a file shared or private, write TEXT at OFFSET, say "written", then on a line from stdin print
    /// what this mapping now holds there.
    struct MapWrite: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "map-write")
        @Option var file: String
        @Flag var `private` = false
        @Option var text: String
        @Option var at: Int = 0

        func run() throws {
            let file = try MappedFile.open(at: file)
            let mapping = try file.map(`private` ? .private : .shared)
            try mapping.write(Array(text.utf8), at: at)
            say("written")
            _ = readLine()
            let now = try mapping.read(at: at, count: text.utf8.count)
            say("sees=" + String(decoding: now, as: UTF8.self))
        }
    }

    /// Get a memfd by inheritance (--fd) or over a Unix socket (--socket: listen, say "listening",
    /// accept, receive), then print its seals, size, text, and what each refused change reports.
    struct MemFDInfo: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "memfd-info")
        @Option var fd: Int32?
        @Option var socket: String?
        @Option(help: "Seals the receiver insists on (e.g. shrink,grow,write,seal).") var require: String?

        func run() throws {
            let memfd: MemFD
            if let socket {
                let listener = try UnixSocket.listen(at: socket)
                say("listening")
                let connection = try listener.accept()
                let (descriptor, message) = try connection.receiveDescriptor()
                say("message=" + String(decoding: message, as: UTF8.self))
                say("peer-uid=\(try connection.peerUserID())")
                memfd = try MemFD(adopting: descriptor, name: "received")
                listener.close()
            } else {
                memfd = try MemFD(adopting: FileDescriptor(rawValue: fd!), name: "inherited")
            }
            let seals = try memfd.seals()
            say("seals=\(seals)")
            let size = try memfd.size()
            say("size=\(size)")
            let text = try memfd.read(at: 0, count: min(size, 64)).prefix { $0 != 0 }
            say("text=" + String(decoding: text, as: UTF8.self))
            if let require, let wanted = MemFD.Seals(names: require) {
                do { try memfd.requireSeals(wanted); say("trusted=yes") } catch { say("trusted=no \(error.code.name)") }
            }
            say("write=" + outcome { () throws(SharedMemoryError) in try memfd.write(Array(text.prefix(1)), at: 0) })
            say("shrink=" + outcome { () throws(SharedMemoryError) in try memfd.resize(to: max(size - 1, 0)); try memfd.resize(to: size) })
            say("grow=" + outcome { () throws(SharedMemoryError) in try memfd.resize(to: size + 4096); try memfd.resize(to: size) })
            say("map-shared-writable=" + outcome { () throws(SharedMemoryError) in try memfd.map(.shared, writable: true).unmap() })
            say("end")
        }

        func outcome(_ body: () throws(SharedMemoryError) -> Void) -> String {
            do { try body(); return "ok" } catch { return error.code.name }
        }
    }
}

private func say(_ line: String) {
    print(line)
    fflush(nil)
}

/// Whether stdin has a line (or EOF) waiting, without blocking.
private func lineWaiting() -> Bool {
    var request = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
    return poll(&request, 1, 0) > 0
}
