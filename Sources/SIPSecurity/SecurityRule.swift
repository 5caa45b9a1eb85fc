public import SIPParsing

/// The edge policy's rules. Raw values are metric labels and audit-log names.
public enum SecurityRule: String, Sendable, CaseIterable, Codable {
    case sqlInjection = "sql_injection"
    case scriptInjection = "script_injection"
    case shellInjection = "shell_injection"
    /// `%0d`/`%0a` in a URI or header value: decoded by a careless peer, they split the message.
    case crlfInjection = "crlf_injection"
    /// Framing tricks a lenient parser downstream could read differently: space before the colon of a header it
    /// frames or routes by (`SecurityConfiguration.noSpaceBeforeColon`), a folded or repeated Content-Length.
    case headerSmuggling = "header_smuggling"
    /// NUL or another control character inside a quoted string (legal in RFC 3261, useless and dangerous here).
    case controlCharacter = "control_character"
    case pathTraversal = "path_traversal"
    case invalidUTF8 = "invalid_utf8"
    case tooManyVias = "too_many_vias"
    case uriTooLong = "uri_too_long"
    case domainNotAllowed = "domain_not_allowed"
    case blockedUserAgent = "blocked_user_agent"
    /// The message did not parse (the parse error names why).
    case malformed = "malformed"
    case rateLimited = "rate_limited"
    case banned = "banned"
}

extension SecurityRule {
    /// Position in `allCases`: a bit index and an array index for per-rule counters.
    public var ordinal: Int {
        switch self {
        case .sqlInjection: 0
        case .scriptInjection: 1
        case .shellInjection: 2
        case .crlfInjection: 3
        case .headerSmuggling: 4
        case .controlCharacter: 5
        case .pathTraversal: 6
        case .invalidUTF8: 7
        case .tooManyVias: 8
        case .uriTooLong: 9
        case .domainNotAllowed: 10
        case .blockedUserAgent: 11
        case .malformed: 12
        case .rateLimited: 13
        case .banned: 14
        }
    }
}

/// What to do with a message a rule refuses.
public enum RuleAction: String, Sendable, Codable {
    /// Answer 403 Forbidden (or the rule's own status), then drop.
    case reject
    /// Drop silently: no answer for a scanner to learn from.
    case drop
    /// Let it through (the rule is off).
    case allow
}

/// A policy decision: a value, never an error and never a side effect. The worker counts and logs.
public enum Verdict: Equatable, Sendable {
    case accept
    /// Answer `status` (with `reason`, fixed text) and drop.
    case reject(status: UInt16, reason: StaticStringBox, rule: SecurityRule)
    case drop(SecurityRule)

    public var rule: SecurityRule? {
        switch self {
        case .accept: nil
        case .reject(_, _, let rule): rule
        case .drop(let rule): rule
        }
    }
}

/// A `StaticString` that can sit in an `Equatable` enum (reason phrases are always literals: no message bytes).
public struct StaticStringBox: Equatable, Sendable, CustomStringConvertible {
    public let text: StaticString
    public init(_ text: StaticString) { self.text = text }
    public static func == (a: StaticStringBox, b: StaticStringBox) -> Bool { a.description == b.description }
    public var description: String { text.description }
}

extension SIPParseError.Code {
    /// The SIP status that answers this parse error: 505 for a version we do not speak, 400 otherwise.
    public var responseStatus: UInt16 {
        self == .unsupportedSIPVersion ? 505 : 400
    }
}
