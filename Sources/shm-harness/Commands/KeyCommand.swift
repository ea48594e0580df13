import ArgumentParser
import SharedMemoryKit

struct KeyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key",
        abstract: "Print Qt's string form of the native key derived from a legacy key.",
        discussion: "Prints what QNativeIpcKey::toString() prints for QSharedMemory::legacyNativeKey(KEY, TYPE) "
            + "(with --semaphore: QSystemSemaphore's), or with --native just the native key."
    )

    @Option(help: "The backend (default systemv, Qt's legacy default on Linux).")
    var type: BackendArgument = .systemv

    @Flag(help: "Derive the key as QSystemSemaphore does (prefix qipc_systemsem_).")
    var semaphore = false

    @Flag(help: "Print the native key alone (a path for systemv, a name for posix).")
    var native = false

    @Argument(help: "The legacy key.")
    var legacyKey: String

    func run() throws {
        let key = NativeIPCKey.legacy(legacyKey, type: type.keyType, kind: semaphore ? .systemSemaphore : .sharedMemory)
        print(native ? key.nativeKey : (key.toString() ?? ""))
    }
}
