import ArgumentParser

/// Number options, checked with a message that says what is wrong: a negative number ("must be ≥ 0"), a
/// fraction, a value out of range, `nan` or `inf` are exit 2 before anything happens.
///
/// Options declared with these also use `parsing: .unconditional`: ArgumentParser otherwise reads `-1` as
/// a short flag and says "Missing value".
enum NumberArgument {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// A whole number in `range` (default: 0 and up).
    static func count(_ text: String, range: ClosedRange<Int> = 0...Int.max) throws -> Int {
        let trimmed = text.filter { $0 != "_" }
        guard let value = Int(trimmed) else {
            if let number = Double(trimmed), !number.isNaN, number.rounded() == number, abs(number) >= 9.2e18 {
                throw Invalid(description: "\(text) is too large; at most \(range.upperBound)")
            }
            if trimmed.hasPrefix("-"), trimmed.dropFirst().allSatisfy(\.isNumber), !trimmed.dropFirst().isEmpty {
                throw Invalid(description: "must be ≥ \(range.lowerBound), not \(text)")
            }
            if trimmed.allSatisfy(\.isNumber), !trimmed.isEmpty {
                throw Invalid(description: "\(text) is too large; at most \(range.upperBound)")
            }
            throw Invalid(description: "must be a whole number, not '\(text)'")
        }
        if value < range.lowerBound { throw Invalid(description: "must be ≥ \(range.lowerBound), not \(value)") }
        if value > range.upperBound { throw Invalid(description: "must be at most \(range.upperBound), not \(value)") }
        return value
    }

    /// The largest number of seconds any option takes (about 31 years): Duration and timespec hold it.
    static let maxSeconds: Double = 1_000_000_000

    /// A finite number of seconds from 0 to ``maxSeconds`` (fractions allowed).
    static func seconds(_ text: String) throws -> Double {
        guard let value = Double(text) else { throw Invalid(description: "must be a number of seconds, not '\(text)'") }
        guard value.isFinite else { throw Invalid(description: "must be a finite number of seconds, not \(text)") }
        if value < 0 { throw Invalid(description: "must be ≥ 0, not \(text)") }
        if value > maxSeconds { throw Invalid(description: "must be at most \(Int(maxSeconds)) seconds, not \(text)") }
        return value
    }
}
