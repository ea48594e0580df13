import CShmShim
import CShmh
import SystemPackage

#if canImport(Glibc)
import Glibc
#else
#error("Unsupported platform")
#endif

/// Handing a descriptor (a ``MemFD``, an unlinked ``MappedFile``) to a child process by inheritance.
///
/// The library opens every descriptor close-on-exec, so nothing leaks into children by accident. To give one
/// to a child, make an inheritable copy (no `FD_CLOEXEC`), start the child with its number (an argument or
/// an environment variable), then close the copy in the parent.
public enum DescriptorPassing {
    /// An inheritable duplicate at the lowest free number `>= minimum` (no existing descriptor is touched).
    ///
    /// The corresponding C function is `fcntl(F_DUPFD)`.
    public static func inheritableCopy(of descriptor: FileDescriptor, atLeast minimum: CInt = 3) throws(SharedMemoryError) -> FileDescriptor {
        let site = CallSite(operation: "inherit", object: "fd \(descriptor.rawValue)")
        let raw = try site.check("fcntl(F_DUPFD)") { fcntl(descriptor.rawValue, F_DUPFD, minimum) }
        return FileDescriptor(rawValue: raw)
    }

    /// An inheritable duplicate at exactly `target` (what a child expects at a fixed number, e.g. in a
    /// forked child before `exec`). A descriptor already at `target` is closed first, as `dup2` does.
    /// When `target` is the descriptor itself, only `FD_CLOEXEC` is cleared.
    ///
    /// The corresponding C functions are `dup2` (the copy has no `FD_CLOEXEC`) and `fcntl(F_SETFD)`.
    public static func inheritableCopy(of descriptor: FileDescriptor, onto target: CInt) throws(SharedMemoryError) -> FileDescriptor {
        let site = CallSite(operation: "inherit", object: "fd \(descriptor.rawValue)")
        if target == descriptor.rawValue {
            _ = try site.check("fcntl(F_SETFD)") { fcntl(target, F_SETFD, 0) }
            return descriptor
        }
        let raw = try site.check("dup2", detail: "onto \(target)") { dup2(descriptor.rawValue, target) }
        return FileDescriptor(rawValue: raw)
    }
}

/// A Unix-domain `SOCK_SEQPACKET` socket for handing descriptors to unrelated processes (`SCM_RIGHTS`).
///
/// One side ``listen(at:)``s on a path (the socket file is 0600: only this user can connect) and
/// ``accept()``s; the other ``connect(to:)``s. ``send(descriptor:message:)`` sends one descriptor with a
/// short message; ``receiveDescriptor(maxMessage:)`` returns it close-on-exec. The receiver should check
/// what it got (for a memfd: ``MemFD/init(adopting:name:)`` then ``MemFD/requireSeals(_:)``).
public final class UnixSocket {
    /// The path a listener is bound to (removed at ``close()``), nil for connections.
    public let path: String?
    private var fd: FileDescriptor?

    init(fd: FileDescriptor, path: String?) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    /// Binds and listens on `path`, which must not exist.
    ///
    /// The corresponding C functions are `socket`, `fchmod` (0600), `bind` and `listen`.
    public static func listen(at path: String) throws(SharedMemoryError) -> UnixSocket {
        let site = CallSite(operation: "listen", object: path)
        let raw = try site.check("bind", einval: .keyError) { shm_shim_unix_listen(path) }
        return UnixSocket(fd: FileDescriptor(rawValue: raw), path: path)
    }

    /// Connects to a listener at `path`.
    ///
    /// The corresponding C functions are `socket` and `connect`.
    public static func connect(to path: String) throws(SharedMemoryError) -> UnixSocket {
        let site = CallSite(operation: "connect", object: path)
        let raw = try site.check("connect", einval: .keyError) { shm_shim_unix_connect(path) }
        return UnixSocket(fd: FileDescriptor(rawValue: raw), path: nil)
    }

    /// Waits for a connection.
    ///
    /// The corresponding C function is `accept4` (`SOCK_CLOEXEC`).
    public func accept() throws(SharedMemoryError) -> UnixSocket {
        let fd = try open("accept")
        let raw = try site("accept").check("accept4") { shm_shim_unix_accept(fd.rawValue) }
        return UnixSocket(fd: FileDescriptor(rawValue: raw), path: nil)
    }

    /// The user id of the connected peer, from the kernel (`SO_PEERCRED`): who sent what you receive.
    ///
    /// The corresponding C function is `getsockopt(SO_PEERCRED)`.
    public func peerUserID() throws(SharedMemoryError) -> uid_t {
        let fd = try open("peer")
        var uid: uid_t = 0
        _ = try site("peer").check("getsockopt(SO_PEERCRED)") { shm_shim_peer_uid(fd.rawValue, &uid) }
        return uid
    }

    /// Sends `descriptor` (the receiver gets its own descriptor for the same open file) and `message`
    /// (a message carries at least one byte: an empty one travels as a single zero byte).
    ///
    /// The corresponding C function is `sendmsg` with an `SCM_RIGHTS` control message.
    public func send(descriptor: FileDescriptor, message: [UInt8] = []) throws(SharedMemoryError) {
        let fd = try open("send")
        _ = try site("send").check("sendmsg(SCM_RIGHTS)", detail: "fd \(descriptor.rawValue)") {
            message.withUnsafeBytes { shmh_fd_send_raw(fd.rawValue, descriptor.rawValue, $0.baseAddress, $0.count) }
        }
    }

    /// Receives one descriptor (close-on-exec) and the message sent with it.
    ///
    /// - Throws: `notFound` with `ECONNRESET` when the peer closed, `keyError` with `EBADMSG` when the
    ///   message carried no descriptor.
    ///
    /// The corresponding C function is `recvmsg` (`MSG_CMSG_CLOEXEC`).
    public func receiveDescriptor(maxMessage: Int = 256) throws(SharedMemoryError) -> (descriptor: FileDescriptor, message: [UInt8]) {
        let fd = try open("receive")
        var buffer = [UInt8](repeating: 0, count: max(maxMessage, 1))
        var length = 0
        let raw: Int32
        do throws(SharedMemoryError) {
            raw = try site("receive").check("recvmsg(SCM_RIGHTS)") {
                buffer.withUnsafeMutableBytes { shmh_fd_recv_raw(fd.rawValue, $0.baseAddress, $0.count, &length) }
            }
        } catch where error.underlyingError == .badMessage || error.underlyingError == .messageTooLong {
            // As libshmh's shmh_fd_recv says them: no descriptor, or a control message cut short (e.g. the
            // receiver is out of descriptors) is the sender's message not being what was asked for.
            throw SharedMemoryError(
                .keyError, operation: error.operation, call: error.call, underlyingError: error.underlyingError, object: error.object,
                detail: error.underlyingError == .badMessage ? "the message carried no descriptor" : "the control message was cut short")
        }
        return (FileDescriptor(rawValue: raw), Array(buffer.prefix(length)))
    }

    /// Closes the socket; a listener also removes its path.
    public func close() {
        guard let fd else { return }
        try? fd.close()
        self.fd = nil
        if let path { unlink(path) }
    }

    /// The socket's descriptor (nil once closed), e.g. to `poll` several sockets.
    public var descriptor: FileDescriptor? { fd }

    private func site(_ operation: String) -> CallSite { CallSite(operation: operation, object: path ?? "unix socket") }

    private func open(_ operation: String) throws(SharedMemoryError) -> FileDescriptor {
        guard let fd else { throw site(operation).refusal(.notFound, "the socket was closed") }
        return fd
    }
}
