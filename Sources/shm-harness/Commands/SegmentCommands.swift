import ArgumentParser
import SharedMemoryKit

#if canImport(Glibc)
import Glibc
#endif

struct CreateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create",
        abstract: "Create a zero-filled segment, print its key string, hold it, then detach.",
        discussion: "Holds the segment until --hold-seconds pass or SIGINT/SIGTERM arrives (without "
            + "--hold-seconds: until a signal). The detach at the end destroys the segment if nobody else is attached."
    )

    @OptionGroup var keyOptions: KeyOptions

    @Option(help: "The size in bytes.")
    var size: Int

    @Option(help: "Seconds to hold the segment before detaching (default: until SIGINT or SIGTERM).")
    var holdSeconds: Double?

    @Option(help: "Seconds that creating and the final detach may wait for the segment's lock (default: 30).")
    var lockTimeout: Double = 30

    func validate() throws {
        if let holdSeconds, holdSeconds < 0 || !holdSeconds.isFinite || holdSeconds > 1e9 {
            throw ValidationError("--hold-seconds must be a number of seconds from 0 to 1000000000")
        }
    }

    func run() throws {
        // Block the signals first, so that one arriving during create is not lost and detach still runs.
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let key = keyOptions.resolve()
        let segment = SharedMemory(key: key, options: keyOptions.segmentOptions(lockTimeout: lockWait(lockTimeout)))
        try segment.create(size: size)
        print(key.toString() ?? "")
        fflush(nil)
        if let holdSeconds {
            var timeout = timespec(
                tv_sec: Int(holdSeconds), tv_nsec: Int((holdSeconds - holdSeconds.rounded(.down)) * 1e9))
            while sigtimedwait(&signals, nil, &timeout) == -1 && errno == EINTR {}
        } else {
            var received: Int32 = 0
            sigwait(&signals, &received)
        }
        try segment.detach()
    }
}

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Attach read-only, take the lock, and write the segment's raw bytes to standard output."
    )

    @OptionGroup var keyOptions: KeyOptions

    @Option(help: "The first byte to write.")
    var offset: Int = 0

    @Option(help: "How many bytes (default: to the end of the segment).")
    var length: Int?

    @Flag(help: "Read without taking the segment's lock (not even to attach and detach).")
    var noLock = false

    @Option(help: "Seconds that each wait for the lock may take, attach and detach included (default: 30).")
    var lockTimeout: Double = 30

    func run() throws {
        let segment = SharedMemory(
            key: keyOptions.resolve(), options: keyOptions.segmentOptions(lockTimeout: lockWait(lockTimeout), takesLock: !noLock))
        try segment.attach(.readOnly)
        defer { try? segment.detach() }
        if !noLock { try segment.lock(timeout: lockWait(lockTimeout)) }
        let bytes: [UInt8]
        do {
            bytes = try segment.read(at: offset, count: length ?? max(0, segment.size - offset))
        } catch {
            if !noLock { try? segment.unlock() }
            throw error
        }
        if !noLock { try segment.unlock() }
        try bytes.withUnsafeBytes { try writeStandardOutput($0) }
    }
}

struct WriteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Attach read-write, take the lock, and write standard input's bytes at an offset."
    )

    @OptionGroup var keyOptions: KeyOptions

    @Option(help: "Where to write.")
    var offset: Int = 0

    @Flag(help: "Write without taking the segment's lock (not even to attach and detach).")
    var noLock = false

    @Option(help: "Seconds that each wait for the lock may take, attach and detach included (default: 30).")
    var lockTimeout: Double = 30

    func run() throws {
        var input: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw CommandFailure(message: "cannot read standard input") }
            if n == 0 { break }
            input.append(contentsOf: chunk[0..<n])
        }
        let segment = SharedMemory(
            key: keyOptions.resolve(), options: keyOptions.segmentOptions(lockTimeout: lockWait(lockTimeout), takesLock: !noLock))
        try segment.attach(.readWrite)
        defer { try? segment.detach() }
        if !noLock { try segment.lock(timeout: lockWait(lockTimeout)) }
        defer { if !noLock { try? segment.unlock() } }
        try segment.write(input, at: offset)
    }
}

/// `--lock-timeout SECONDS` as the library's wait (a value that is not a finite, non-negative number is left to
/// option validation; here it becomes no wait at all rather than a crash).
func lockWait(_ seconds: Double) -> Duration {
    guard seconds.isFinite, seconds > 0 else { return .zero }
    return .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
}
