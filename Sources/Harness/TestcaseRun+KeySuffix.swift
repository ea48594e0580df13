extension TestcaseRun {
    /// The suffix that makes a scenario's legacy key unique to the testcase: the token with its hexadecimal run
    /// part in decimal (`f7a34d83-10` -> `4154739075-10`). Qt keeps only a key's ASCII letters in the object's
    /// name (and hashes the whole key), so a suffix without letters leaves the name's length to the scenario's
    /// key alone: a key at the length limit stays at it (scenarios/create/name-length-limit.yaml). Any other
    /// token is spelt out byte by byte in decimal after a `-` (which the first form never starts with): letter-free
    /// and one-to-one too.
    static func keySuffix(_ token: String) -> String {
        let parts = token.split(separator: "-", omittingEmptySubsequences: false)
        if let first = parts.first, !first.isEmpty, first.count <= 16,
            first.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }), let run = UInt64(first, radix: 16),
            parts.dropFirst().allSatisfy({ !$0.isEmpty && $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } })
        {
            return ([String(run)] + parts.dropFirst().map(String.init)).joined(separator: "-")
        }
        return "-" + token.utf8.map { byte in
            let digits = String(byte)
            return String(repeating: "0", count: 3 - digits.count) + digits
        }.joined()
    }
}
