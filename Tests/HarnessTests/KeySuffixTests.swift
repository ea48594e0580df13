@testable import Harness
import Testing

/// The suffix that makes a scenario's key unique has no letter (Qt keeps a key's ASCII letters in the object's
/// name, so a letter-free suffix leaves the name's length to the scenario) and tells tokens apart.
@Suite struct KeySuffixTests {
    @Test func runTokensBecomeDecimal() {
        #expect(TestcaseRun.keySuffix("f7a34d83-10") == "4154674563-10")
        #expect(TestcaseRun.keySuffix("0-0") == "0-0")
        #expect(TestcaseRun.keySuffix("ffffffff-4095") == "4294967295-4095")
    }

    @Test func otherTokensAreSpeltOutByteByByte() {
        #expect(TestcaseRun.keySuffix("one-x") == "-111110101045120")
        #expect(TestcaseRun.keySuffix("") == "-")
    }

    @Test func noLetterAndNoTwoTokensAlike() {
        let tokens = ["a-1", "b-1", "a-2", "10-1", "a1", "A-1", "one-a-1", "g-1", "f7a34d83-10", "f7a34d83-1-0"]
        let suffixes = tokens.map(TestcaseRun.keySuffix)
        for suffix in suffixes { #expect(!suffix.unicodeScalars.contains { ("a"..."z").contains($0) || ("A"..."Z").contains($0) }, "\(suffix)") }
        #expect(Set(suffixes).count == tokens.count, "\(suffixes)")
    }
}
