import SharedMemoryKit
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A worker's sockets to other workers (`channel` lines of its plan: socketpair ends the runner made and the
/// worker inherited). `send-fd` sends a memfd's descriptor with `SCM_RIGHTS` to every process of a group;
/// `receive-fd` takes the next descriptor any peer sent. Each message carries the resource id, so a receiver
/// never adopts the wrong resource.
public final class DescriptorChannels {
    private var peers: [(channel: Plan.Channel, socket: UnixSocket)]

    public init(_ channels: [Plan.Channel]) {
        peers = channels.map { ($0, UnixSocket(adopting: FileDescriptor(rawValue: $0.fd))) }
    }

    /// Sends the resource's descriptor to every process of `group` this worker has a channel to.
    func send(_ handle: ResourceHandle, to group: String) throws(SharedMemoryError) {
        guard let memfd = handle as? MemFDHandle else {
            throw SharedMemoryError(.invalidSize, operation: "send-fd", object: handle.objectName, detail: "only a memfd's descriptor is passed")
        }
        let targets = peers.filter { $0.channel.group == group }
        guard !targets.isEmpty else {
            throw SharedMemoryError(.notFound, operation: "send-fd", detail: "no channel to worker group \(group) in this plan")
        }
        let descriptor = try memfd.descriptorToSend()
        for peer in targets {
            do throws(SharedMemoryError) {
                try peer.socket.send(descriptor: descriptor, message: Array(handle.spec.id.utf8))
            } catch {
                throw SharedMemoryError(
                    error.code == .unknown ? .notFound : error.code, operation: "send-fd", call: error.call,
                    underlyingError: error.underlyingError, object: "\(peer.channel.group)/\(peer.channel.index)",
                    detail: "sending memfd \(handle.spec.id)")
            }
        }
    }

    /// Waits for the next descriptor a peer sends and makes it this resource. Peers that end without sending
    /// are dropped; when none is left, `not-found`.
    func receive(into handle: ResourceHandle) throws(SharedMemoryError) {
        guard let memfd = handle as? MemFDHandle else {
            throw SharedMemoryError(.invalidSize, operation: "receive-fd", object: handle.objectName, detail: "only a memfd's descriptor is passed")
        }
        try memfd.checkCanReceive()
        while true {
            let open = peers.indices.filter { peers[$0].socket.descriptor != nil }
            guard !open.isEmpty else {
                throw SharedMemoryError(.notFound, operation: "receive-fd", detail: "memfd \(handle.spec.id): every sender ended without sending it")
            }
            var fds = open.map { pollfd(fd: peers[$0].socket.descriptor!.rawValue, events: Int16(POLLIN), revents: 0) }
            let ready = Glibc.poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                throw SharedMemoryError(.unknown, operation: "receive-fd", call: "poll", underlyingError: Errno(rawValue: errno), detail: "waiting for memfd \(handle.spec.id)")
            }
            for (n, i) in open.enumerated() where fds[n].revents != 0 {
                let received: (descriptor: FileDescriptor, message: [UInt8])
                do throws(SharedMemoryError) {
                    received = try peers[i].socket.receiveDescriptor(maxMessage: 256)
                } catch where error.underlyingError == .connectionReset {
                    peers[i].socket.close()  // this peer ended; the others may still send
                    continue
                }
                let id = String(decoding: received.message, as: UTF8.self)
                guard id == handle.spec.id else {
                    try? received.descriptor.close()
                    throw SharedMemoryError(
                        .keyError, operation: "receive-fd", object: "\(peers[i].channel.group)/\(peers[i].channel.index)",
                        detail: "received the descriptor of '\(id)', expected '\(handle.spec.id)' (descriptors arrive in the order they were sent)")
                }
                try memfd.adopt(received: received.descriptor)
                return
            }
        }
    }
}
