extension Plan {
    /// A socket (a `SOCK_SEQPACKET` socketpair end the runner made) connected to one process of another worker
    /// group: `send-fd` sends a descriptor over it with `SCM_RIGHTS`, `receive-fd` receives from it.
    ///
    ///     channel receiver 0 fd=7
    public struct Channel: Sendable, Equatable {
        /// The peer's worker group and index.
        public var group: String
        public var index: Int
        /// The inherited descriptor (the same number in the runner and in the worker).
        public var fd: Int32

        public init(group: String, index: Int, fd: Int32) {
            self.group = group
            self.index = index
            self.fd = fd
        }

        static func parse(_ words: [Substring], line: Int) throws(ParseError) -> Channel {
            guard words.count == 4, let group = decode(words[1]), !group.isEmpty, let index = Int(words[2]), index >= 0 else {
                throw ParseError(line: line, message: "channel GROUP INDEX fd=N")
            }
            let f = try fields(words[3...], line: line, allowed: ["fd"])
            guard f["expect-error"] == nil, let text = f["fd"], let fd = Int32(text), fd >= 0 else {
                throw ParseError(line: line, message: "channel needs fd=N (a descriptor number)")
            }
            return Channel(group: group, index: index, fd: fd)
        }
    }
}
