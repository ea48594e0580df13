/// What a scenario file may ask for (docs/limits.md). Every limit is checked while loading, so that `validate`
/// refuses what the runner, the kernel or the file system could not do later: each one is an error with
/// `FILE:LINE:COLUMN` and exit status 2, found in bounded time and memory whatever the file says.
public enum ScenarioLimits {
    /// A scenario file's size. Hand-written scenarios are a few KiB.
    public static let fileBytes = 1 << 20
    /// YAML nodes (scalars, lists, mappings) after aliases (`*name`) are expanded: an alias repeats what its
    /// anchor holds, so a small file can stand for billions of nodes ("billion laughs").
    public static let yamlNodes = 100_000
    /// Testcases one file's matrix makes (the product of its dimensions' sizes, checked before expanding).
    public static let matrixCombinations = 4096
    /// YAML nodes × matrix combinations: the loader reads the whole tree once per combination.
    public static let loaderWork = 250_000
    /// Steps one worker (or setup) may execute, counted statically: `repeat: N` multiplies its body
    /// (`repeat: { for: D }` counts its body once: the timeout bounds it).
    public static let executedSteps = 1_000_000_000
    /// Plan lines the runner writes for one testcase: each worker process gets its own plan, so a worker's
    /// steps (as written, a repeat's body once) count once per process (`count:`). Plans live in the temp
    /// folder, often tmpfs (memory).
    public static let plannedSteps = 1_000_000
    /// Any single value in the file (a summary, a command argument, hex bytes).
    public static let valueBytes = 65_536
    /// A segment's legacy key, in UTF-8 bytes. Qt's object name is a prefix (at most 19 bytes with POSIX's
    /// `sem.`), the key's ASCII letters (the runner's unique suffix has none) and 40 hex digits of SHA-1, so a
    /// key of more than about 196 letters makes a name past NAME_MAX (255): create and attach then fail with
    /// key-error, in Qt as in the library (scenarios/create/name-length-limit.yaml). 256 bytes lets a
    /// scenario go past that limit, and keeps a journal line short.
    public static let keyBytes = 256
    /// Names that become parts of file names, environment names or plan lines: resource ids, worker names,
    /// barrier names, matrix names, tags.
    public static let nameBytes = 64
    /// A file resource's `dir:` path: the runner adds `/shm-harness-<id>-<token>.lock` (at most 64 + 40 bytes)
    /// and the whole must fit PATH_MAX (4096).
    public static let directoryBytes = 3072
}
