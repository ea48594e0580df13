import ArgumentParser
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

/// Hidden helpers the tests run as separate processes (libuv/LTP style: the binary re-executes itself).
struct DebugCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug",
        abstract: "Helper operations for tests.",
        shouldDisplay: false,
        subcommands: [AddCommand.self, HoldLockCommand.self, SemaphoreOp.self]
    )

    /// Attach, then N times: lock, read the u64 at OFFSET, add 1, write it back, unlock. With --handshake, after
    /// each read: print "read VALUE" and wait for a line on stdin before writing (a test forces an interleaving);
    /// "attaching" comes before the attach, "locking" before each lock.
    struct AddCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "add")
        @OptionGroup var keyOptions: KeyOptions
        @Option var offset: Int = 0
        @Option var iterations: Int = 1000
        @Flag var noLock = false
        @Flag(help: "Between read and write: print \"read VALUE\", then wait for a line on stdin.") var handshake = false

        func run() throws {
            let segment = SharedMemory(key: keyOptions.resolve(), options: keyOptions.segmentOptions)
            if handshake {
                print("attaching")  // attach takes the segment's lock too (Qt's call order)
                fflush(nil)
            }
            try segment.attach()
            for _ in 0..<iterations {
                if handshake {
                    print("locking")
                    fflush(nil)
                }
                if !noLock { try segment.lock(timeout: .seconds(60)) }
                let old = try segment.read(at: offset, count: 8)
                let value = old.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } &+ 1
                if handshake {
                    print("read \(value - 1)")
                    fflush(nil)
                    _ = readLine()
                }
                try segment.write((0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }, at: offset)
                if !noLock { try segment.unlock() }
            }
            try segment.detach()
            print("done \(iterations)")
        }
    }

    /// Attach and take the lock, print "locked", then wait for a line on stdin (or EOF), or die with --crash.
    struct HoldLockCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "hold-lock")
        @OptionGroup var keyOptions: KeyOptions
        @Flag(help: "SIGKILL itself while holding the lock.") var crash = false

        func run() throws {
            let segment = SharedMemory(key: keyOptions.resolve(), options: keyOptions.segmentOptions)
            try segment.attach()
            try segment.lock(timeout: .seconds(30))
            print("locked")
            fflush(nil)
            if crash { kill(getpid(), SIGKILL) }
            _ = readLine()
            try segment.unlock()
            try segment.detach()
            print("released")
        }
    }

    /// Open a semaphore (legacy key, semaphore derivation, or a native key) and acquire or release.
    struct SemaphoreOp: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "semaphore")
        @OptionGroup var keyOptions: KeyOptions
        @Argument var operation: String
        @Option var count: Int = 1
        @Option var timeout: Double?
        @Option var initialValue: Int = 0
        @Flag(help: "Stay until a line on stdin before closing.") var hold = false
        @Flag(help: "Release after each acquire.") var releaseAfter = false
        @Flag(help: "Print \"acquiring\" before each acquire (a handshake for tests).") var announce = false

        func run() throws {
            let semaphore = try SystemSemaphore(
                key: keyOptions.resolve(kind: .systemSemaphore), initialValue: initialValue,
                options: keyOptions.semaphoreOptions)
            switch operation {
            case "acquire":
                for _ in 0..<count {
                    if announce {
                        print("acquiring")
                        fflush(nil)
                    }
                    try semaphore.acquire(timeout: timeout.map { .seconds($0) })
                    if releaseAfter { try semaphore.release() }
                }
            case "release": try semaphore.release(count)
            case "value": print(try semaphore.value())
            case "open": break
            default: throw CommandFailure(message: "unknown semaphore operation \(operation)", exitCode: 2)
            }
            print("ok")
            fflush(nil)
            if hold { _ = readLine() }
        }
    }
}
