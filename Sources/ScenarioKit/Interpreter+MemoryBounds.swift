import Yams

extension Interpreter {
    /// `expect: memory: [{res, offset, u64-less-than: N}]`: the u64 at `offset` must be below N. It is how a
    /// negative control in the catalogue says "updates must be lost here" (scenarios/lock/lost-update-without-lock.yaml):
    /// the testcase passes when they are lost and fails, naming the value, when they are not.
    mutating func lessThanCheck(_ bound: Node, _ args: Arguments, _ item: Node, resource: String, offset: Int) -> MemoryCheck? {
        if args["u64"] != nil || args["hex"] != nil {
            reader.fail(item, "give one of u64:, hex: or u64-less-than:")
            return nil
        }
        guard let text = reader.string(bound, "u64-less-than") else { return nil }
        guard let value = UInt64(text.filter { $0 != "_" }), value > 0 else {
            reader.fail(bound, "u64-less-than must be an unsigned 64-bit integer above 0 (nothing is below 0), not '\(text)'")
            return nil
        }
        return MemoryCheck(resource: resource, offset: offset, value: .u64(value), location: reader.location(item), comparison: .lessThan)
    }
}
