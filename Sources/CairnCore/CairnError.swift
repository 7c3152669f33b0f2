/// Every failure Cairn reports: what went wrong and, where there is one, what to do about it.
///
/// One shape for the source, the registry, training and the command line, so a front door
/// renders every failure the same way (`error: …` and `hint: …`, or JSON with both).
public struct CairnError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Failures a front door treats differently from the rest (a daemon condition reason).
    public enum Reason: String, Sendable {
        /// The registry holds rows its audit history does not explain (an edit made beside Cairn).
        case registryTampered = "RegistryTampered"
        /// What a write was decided on changed before it committed; deciding again may succeed.
        case inputsMoved = "InputsMoved"
        /// The revision's commits are not signed by a trusted key (`--verify-signatures`).
        case untrustedRevision = "UntrustedRevision"
    }

    /// What went wrong, naming where (`file:line:column`, `Kind/name`, a path).
    public var message: String
    /// What to do about it.
    public var hint: String?
    public var reason: Reason?

    public init(_ message: String, hint: String? = nil, reason: Reason? = nil) {
        self.message = message
        self.hint = hint
        self.reason = reason
    }

    public var description: String { hint.map { "\(message) (\($0))" } ?? message }
}
