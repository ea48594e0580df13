import ArgumentParser
import SharedMemoryKit

/// The backend names the CLI takes.
enum BackendArgument: String, ExpressibleByArgument, CaseIterable {
    case systemv, posix

    var keyType: NativeIPCKey.KeyType { self == .systemv ? .systemV : .posixRealtime }
}

/// `--key LEGACYKEY [--type T]` or `--native-key STRING`: how every command names a segment.
struct KeyOptions: ParsableArguments {
    @Option(help: "A legacy key, as Qt's QSharedMemory(key) takes it; derived as Qt does.")
    var key: String?

    @Option(help: "The backend of a legacy --key (default systemv, Qt's legacy default on Linux).")
    var type: BackendArgument?

    @Option(help: "A native key in Qt's string form (QNativeIpcKey::toString()), e.g. posix:/name.")
    var nativeKey: String?

    @Flag(help: "Accept a System V key file outside the temp folder ($TMPDIR or /tmp) and $XDG_RUNTIME_DIR.")
    var allowAnyPath = false

    func validate() throws {
        switch (key, nativeKey) {
        case (nil, nil): throw ValidationError("give --key LEGACYKEY or --native-key STRING")
        case (.some, .some): throw ValidationError("give either --key or --native-key, not both")
        case (nil, .some) where type != nil: throw ValidationError("--type applies to --key only")
        case (nil, .some(let text)) where NativeIPCKey(string: text) == nil:
            throw ValidationError("--native-key '\(text)' is not a valid key string (expected e.g. posix:/name)")
        default: break
        }
    }

    /// The library options these flags ask for.
    var segmentOptions: SharedMemory.Options { SharedMemory.Options(allowAnyPath: allowAnyPath) }
    /// The segment options of a command that bounds its lock waits (`--lock-timeout`) and may take no lock.
    func segmentOptions(lockTimeout: Duration, takesLock: Bool = true) -> SharedMemory.Options {
        SharedMemory.Options(operationTimeout: lockTimeout, takesLock: takesLock, allowAnyPath: allowAnyPath)
    }
    var semaphoreOptions: SystemSemaphore.Options { SystemSemaphore.Options(allowAnyPath: allowAnyPath) }

    func resolve(kind: IPCObjectKind = .sharedMemory) -> NativeIPCKey {
        if let nativeKey, let parsed = NativeIPCKey(string: nativeKey) { return parsed }
        return .legacy(key ?? "", type: (type ?? .systemv).keyType, kind: kind)
    }
}
