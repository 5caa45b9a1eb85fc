import SIPBytes
public import SIPParsing

/// Settings of the message validator. Every limit has a safe default; every rule's action can be changed.
public struct SecurityConfiguration: Sendable, Equatable {
    /// Most Via hops in a request or response. Default: 20.
    public var maxViaHops: Int = 20
    /// Longest Request-URI, in bytes. Default: 512.
    public var maxURILength: Int = 512
    /// Request-URI hosts served (exact, or any subdomain of an entry), for requests from the public side; empty
    /// allows any. Compared without case.
    public var allowedDomains: [String] = []
    /// User-Agent substrings refused (without case): scanners and war-dialers by default.
    public var blockedUserAgents: [String] = ["friendly-scanner", "sipvicious", "sipcli", "sip-scan", "sundayddr",
                                              "iwar", "vaxsipuseragent", "pplsip", "smap"]
    /// What each rule does; rules not listed reject.
    public var actions: [SecurityRule: RuleAction] = [.blockedUserAgent: .drop, .banned: .drop]
    /// Headers on which a space before the colon (`Via : ...`) is refused (rule `header_smuggling`) on every
    /// transport; on any other header it is accepted, as RFC 3261's `HCOLON` allows. These are the ones the edge or
    /// the core frames or routes by: a parser that does not trim before the colon misses `Content-Length :` and
    /// frames the body differently, or skips `Via :`/`Route :` and routes differently from the edge.
    public var noSpaceBeforeColon: [HeaderKind] = SecurityConfiguration.framingAndRoutingHeaders
    /// Refused in addition on TCP and TLS only (Content-Type by default). On a stream the bytes after one message are
    /// the next one, and a body that one parser types (message/sip, multipart) and another, missing `Content-Type :`,
    /// does not is where a second message hides; a datagram bounds its one message whatever its body is said to be.
    public var noSpaceBeforeColonOnStreams: [HeaderKind] = [.contentType]

    /// The default of ``noSpaceBeforeColon``.
    public static var framingAndRoutingHeaders: [HeaderKind] {
        [.contentLength, .via, .route, .callID, .cseq, .maxForwards]
    }

    public init() {}

    public func action(for rule: SecurityRule) -> RuleAction { actions[rule] ?? .reject }
}

/// Checks one parsed message against the edge policy. Pure: no clock, no counters, no logging, no allocation on
/// the accept path. One per worker (it holds pre-lowered copies of the configured strings); a class so a check
/// does not copy (and reference-count) those arrays.
public final class SecurityValidator {
    public let configuration: SecurityConfiguration
    private let domains: [[UInt8]]
    private let agents: [[UInt8]]
    /// `agents` as one substring search (C, SIMD prefilter), or nil when they do not fit a table (an empty entry,
    /// over 64, over 255 bytes): then the plain loop below runs.
    private let agentSet: PatternSet?
    private let patterns = PatternSet(AttackPatterns.all.map { Array($0.0.utf8) })
    /// Per pattern (table order), enabled when its rule is.
    private let patternMask: UInt64
    /// Bit per rule (`SecurityRule.allCases` order): set when the rule's action is not `allow`. A dictionary
    /// lookup per check would cost more than the check.
    private let enabledRules: UInt32
    /// `noSpaceBeforeColon` as a mask of kind codes (a `HeaderSet`), and with `noSpaceBeforeColonOnStreams` added:
    /// the per-line walk tests a bit instead of searching an array.
    private let spacedColonKinds: UInt64
    private let spacedColonKindsOnStreams: UInt64

    public init(configuration: SecurityConfiguration) {
        self.configuration = configuration
        domains = configuration.allowedDomains.map { Array($0.lowercased().utf8) }
        agents = configuration.blockedUserAgents.map { Array($0.lowercased().utf8) }
        agentSet = !agents.isEmpty && PatternSet.fit(agents) ? PatternSet(agents, wordStart: false) : nil
        var mask: UInt32 = 0
        for (index, rule) in SecurityRule.allCases.enumerated() where configuration.action(for: rule) != .allow {
            mask |= 1 << UInt32(index)
        }
        enabledRules = mask
        spacedColonKinds = configuration.noSpaceBeforeColon.reduce(HeaderSet()) { $0.union(HeaderSet($1)) }.rawValue
        spacedColonKindsOnStreams = configuration.noSpaceBeforeColonOnStreams
            .reduce(HeaderSet(rawValue: spacedColonKinds)) { $0.union(HeaderSet($1)) }.rawValue
        patternMask = patterns.tableMask { index in
            configuration.action(for: AttackPatterns.all[index].1) != .allow
        }
    }

    /// The verdict for `message`. `fromPublicSide` enables the checks that only make sense for clients (domains);
    /// `overStream` (the message came over TCP or TLS) adds ``SecurityConfiguration/noSpaceBeforeColonOnStreams``.
    public func validate(_ message: SIPMessage, fromPublicSide: Bool, overStream: Bool = false) -> Verdict {
        if let rule = firstViolation(message, fromPublicSide: fromPublicSide, overStream: overStream) {
            return verdict(for: rule)
        }
        return .accept
    }

    /// The verdict a rule's configured action gives.
    public func verdict(for rule: SecurityRule) -> Verdict {
        switch configuration.action(for: rule) {
        case .allow: return .accept
        case .drop: return .drop(rule)
        case .reject:
            switch rule {
            case .uriTooLong: return .reject(status: 414, reason: StaticStringBox("Request-URI Too Long"), rule: rule)
            case .tooManyVias: return .reject(status: 400, reason: StaticStringBox("Too Many Via Headers"), rule: rule)
            case .headerSmuggling:
                return .reject(status: 400, reason: StaticStringBox("Ambiguous Message Framing"), rule: rule)
            case .controlCharacter:
                return .reject(status: 400, reason: StaticStringBox("Control Character In Header"), rule: rule)
            case .invalidUTF8: return .reject(status: 400, reason: StaticStringBox("Invalid UTF-8"), rule: rule)
            case .malformed: return .reject(status: 400, reason: StaticStringBox("Bad Request"), rule: rule)
            case .rateLimited, .banned:
                return .reject(status: 503, reason: StaticStringBox("Service Unavailable"), rule: rule)
            case .domainNotAllowed:
                return .reject(status: 404, reason: StaticStringBox("Not Found"), rule: rule)
            default: return .reject(status: 403, reason: StaticStringBox("Forbidden"), rule: rule)
            }
        }
    }

    private func enabled(_ rule: SecurityRule) -> Bool { enabledRules & (1 << UInt32(rule.ordinal)) != 0 }

    private func firstViolation(_ message: SIPMessage, fromPublicSide: Bool, overStream: Bool) -> SecurityRule? {
        let bytes = message.bytes
        if message.viaHopCount > configuration.maxViaHops, enabled(.tooManyVias) { return .tooManyVias }
        let requestURI = message.requestLine?.uri
        if let requestURI, requestURI.span.count > configuration.maxURILength, enabled(.uriTooLong) {
            return .uriTooLong
        }
        if enabled(.headerSmuggling), isAmbiguouslyFramed(message, overStream: overStream) { return .headerSmuggling }
        if message.headerFlags.contains(.controlCharacters), enabled(.controlCharacter) { return .controlCharacter }
        if enabled(.invalidUTF8), !UTF8Check.isValid(bytes, ByteSpan(from: 0, to: message.body.start)) {
            return .invalidUTF8
        }
        // Injection patterns: the Request-URI and every header except the ones whose grammar the parser already
        // pinned down to harmless characters (one C call over all of them, in that order). The body (SDP) is not
        // scanned.
        if let match = patterns.firstMatch(in: bytes, first: requestURI?.span, headers: message.headerTable,
                                           count: message.headerCount, kinds: Self.scannedKinds, mask: patternMask) {
            return AttackPatterns.all[match.pattern].1
        }
        if fromPublicSide, !domains.isEmpty, let requestURI, requestURI.scheme == .sip || requestURI.scheme == .sips,
            enabled(.domainNotAllowed), !isAllowedDomain(bytes, requestURI.host) {
            return .domainNotAllowed
        }
        if !agents.isEmpty, enabled(.blockedUserAgent), message.headerSet.contains(.userAgent) {
            if let agentSet {
                // Every User-Agent line in one C call.
                if agentSet.firstMatch(in: bytes, first: nil, headers: message.headerTable,
                                       count: message.headerCount, kinds: HeaderSet(.userAgent).rawValue, mask: ~0) != nil {
                    return .blockedUserAgent
                }
            } else {
                var index = message.firstIndex(of: .userAgent)
                while let current = index {
                    let value = message.header(at: current).value
                    if agents.contains(where: { Self.contains(bytes, value, lowercased: $0) }) { return .blockedUserAgent }
                    index = message.nextIndex(of: .userAgent, after: current)
                }
            }
        }
        return nil
    }

    /// Header kinds the injection patterns are searched in: all but the ones whose grammar the parser already pinned
    /// down to harmless characters (Via, CSeq, Call-ID, Content-Length, Max-Forwards, Content-Type).
    static let scannedKinds: UInt64 = ~[HeaderKind.via, .cseq, .callID, .contentLength, .maxForwards, .contentType]
        .reduce(HeaderSet()) { $0.union(HeaderSet($1)) }.rawValue

    /// Space before the colon of a header in the configured lists, a folded Content-Length, or Content-Length more
    /// than once (even if equal).
    private func isAmbiguouslyFramed(_ message: SIPMessage, overStream: Bool) -> Bool {
        // The message-level flag (the OR of every line's) keeps the per-line walk off the common path.
        if message.headerFlags.contains(.spaceBeforeColon) {
            let kinds = overStream ? spacedColonKindsOnStreams : spacedColonKinds
            if kinds != 0, message.headerTable.firstIndex(flagged: .spaceBeforeColon, kindMask: kinds,
                                                          limit: message.headerCount) != nil {
                return true
            }
        }
        guard let first = message.firstIndex(of: .contentLength) else { return false }
        if message.header(at: first).flags.contains(.continued) { return true }
        return message.nextIndex(of: .contentLength, after: first) != nil
    }

    private func isAllowedDomain(_ bytes: PacketBytes, _ host: ByteSpan) -> Bool {
        for domain in domains {
            if host.count == domain.count, Self.contains(bytes, host, lowercased: domain) { return true }
            // A subdomain: the host ends with "." + domain.
            if host.count > domain.count, bytes[host.end - domain.count - 1] == UInt8(ascii: "."),
                Self.contains(bytes, ByteSpan(from: host.end - domain.count, to: host.end), lowercased: domain) {
                return true
            }
        }
        return false
    }

    /// True when `span` contains `needle` (lower-case ASCII), compared without case.
    static func contains(_ bytes: PacketBytes, _ span: ByteSpan, lowercased needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, span.count >= needle.count else { return needle.isEmpty }
        var start = span.start
        while start + needle.count <= span.end {
            var i = 0
            while i < needle.count && ASCII.lowercased(bytes[start + i]) == needle[i] { i += 1 }
            if i == needle.count { return true }
            start += 1
        }
        return false
    }
}

/// The attack patterns of the injection, traversal and CRLF rules, matched case-insensitively by `PatternSet` (C);
/// a pattern starting with a letter only at the start of a word.
enum AttackPatterns {
    static let all: [(String, SecurityRule)] = [
        // SQL: tautologies, comment-outs, stacked and union queries, time-based probes.
        ("' or ", .sqlInjection), ("'or ", .sqlInjection), ("' and ", .sqlInjection), ("'--", .sqlInjection),
        ("';", .sqlInjection), ("' union", .sqlInjection), ("union select", .sqlInjection),
        ("union all select", .sqlInjection), ("select * from", .sqlInjection), ("drop table", .sqlInjection),
        ("insert into", .sqlInjection), ("delete from", .sqlInjection), ("xp_cmdshell", .sqlInjection),
        ("sleep(", .sqlInjection), ("benchmark(", .sqlInjection), ("waitfor delay", .sqlInjection),
        ("or 1=1", .sqlInjection), ("1=1--", .sqlInjection),
        // Script/XSS for web dashboards that render SIP headers.
        ("<script", .scriptInjection), ("</script", .scriptInjection), ("javascript:", .scriptInjection),
        ("vbscript:", .scriptInjection), ("onerror=", .scriptInjection), ("onload=", .scriptInjection),
        ("onmouseover=", .scriptInjection), ("<img", .scriptInjection), ("<iframe", .scriptInjection),
        ("<svg", .scriptInjection), ("<body", .scriptInjection), ("<object", .scriptInjection),
        ("<embed", .scriptInjection), ("document.cookie", .scriptInjection), ("alert(", .scriptInjection),
        // Shell: substitutions, chaining into common commands, interpreter paths.
        ("$(", .shellInjection), ("${", .shellInjection), ("&&", .shellInjection), ("||", .shellInjection),
        ("|sh", .shellInjection), ("| sh", .shellInjection), ("; rm ", .shellInjection), (";rm ", .shellInjection),
        ("/bin/sh", .shellInjection), ("/bin/bash", .shellInjection), ("wget ", .shellInjection),
        ("curl ", .shellInjection), ("nc -", .shellInjection), ("`id`", .shellInjection),
        ("`whoami`", .shellInjection), ("`uname", .shellInjection),
        // Traversal, raw and escaped.
        ("../", .pathTraversal), ("..\\", .pathTraversal), ("..%2f", .pathTraversal), ("..%5c", .pathTraversal),
        ("%2e%2e", .pathTraversal), ("/etc/passwd", .pathTraversal),
        // Escaped CR/LF: response splitting once decoded.
        ("%0d", .crlfInjection), ("%0a", .crlfInjection),
    ]
}
