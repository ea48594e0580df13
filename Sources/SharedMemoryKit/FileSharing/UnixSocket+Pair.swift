import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension UnixSocket {
    /// Two connected `SOCK_SEQPACKET` sockets (close-on-exec), with no path: hand one end to a child by
    /// inheritance (``DescriptorPassing/inheritableCopy(of:onto:)``, or a spawn action), keep the other.
    ///
    /// The corresponding C function is `socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC)`.
    public static func pair() throws(SharedMemoryError) -> (UnixSocket, UnixSocket) {
        var fds: [Int32] = [-1, -1]
        let site = CallSite(operation: "socketpair", object: "unix socket pair")
        _ = try site.check("socketpair") {
            socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds)
        }
        return (UnixSocket(fd: FileDescriptor(rawValue: fds[0]), path: nil), UnixSocket(fd: FileDescriptor(rawValue: fds[1]), path: nil))
    }

    /// Takes ownership of a connected socket's descriptor (an end of ``pair()`` that this process inherited);
    /// ``close()`` closes it.
    public convenience init(adopting descriptor: FileDescriptor) {
        self.init(fd: descriptor, path: nil)
    }
}
