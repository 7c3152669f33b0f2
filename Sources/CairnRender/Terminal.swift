#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// ANSI styling that is a no-op unless enabled (stdout is a terminal and colour was not turned off).
public struct Style: Sendable {
    public var enabled: Bool

    public init(enabled: Bool) { self.enabled = enabled }

    /// Colour on when stdout is a terminal, `--no-color` is not given and `NO_COLOR` is unset.
    public static func forStandardOutput(noColor: Bool) -> Style {
        let wanted = !noColor && getenv("NO_COLOR") == nil && isatty(STDOUT_FILENO) == 1
        return Style(enabled: wanted)
    }

    func wrap(_ s: String, _ code: String) -> String { enabled ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
    public func red(_ s: String) -> String { wrap(s, "31") }
    public func green(_ s: String) -> String { wrap(s, "32") }
    public func yellow(_ s: String) -> String { wrap(s, "33") }
    public func cyan(_ s: String) -> String { wrap(s, "36") }
    public func bold(_ s: String) -> String { wrap(s, "1") }
    public func dim(_ s: String) -> String { wrap(s, "2") }
}
