import SharedMemoryKit

// Qt's legacy key "counter" on System V (Qt's legacy default on Linux): same segment, same lock as Qt.
let memory = SharedMemory(legacyKey: "counter")            // or SharedMemory(key: NativeIPCKey(string: "posix:/name")!)
try memory.create(size: 4096)                               // or try memory.attach(.readOnly)
try memory.withLock {                                       // the segment's system semaphore, as Qt's lock()
    try memory.write(Array("hello".utf8), at: 0)            // checked: invalid-size / permission-denied, never a fault
}
let bytes = try memory.read(at: 0, count: 5)               // [104, 101, 108, 108, 111]
try memory.lock(timeout: .seconds(2))                       // a typed lock-error on timeout, never a hang
try memory.unlock()
try memory.detach()                                         // the last detach removes the segment

let semaphore = try SystemSemaphore(key: .legacy("jobs", kind: .systemSemaphore), initialValue: 3, mode: .create)
try semaphore.acquire(timeout: .seconds(1)); try semaphore.release()
semaphore.close(removeIfUnused: true)                       // removes it (and its key file) if nobody else uses it
