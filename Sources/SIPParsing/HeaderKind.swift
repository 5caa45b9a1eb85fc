import SIPBytes
import CSIPScan

/// The kind of a header, from the one C table (`csip_header_kinds.h`): the scanner classifies every header name
/// (full or compact form, any case) as it finds it, so Swift never compares header names.
///
/// An open set, so a struct with static members; ``other`` is every name not in the table.
public struct HeaderKind: Hashable, Sendable, CustomStringConvertible {
    public let code: UInt16

    @inlinable
    public init(code: UInt16) {
        self.code = code
    }

    public static let other = HeaderKind(code: UInt16(CSIP_HDR_OTHER))
    public static let via = HeaderKind(code: UInt16(CSIP_HDR_VIA))
    public static let from = HeaderKind(code: UInt16(CSIP_HDR_FROM))
    public static let to = HeaderKind(code: UInt16(CSIP_HDR_TO))
    public static let callID = HeaderKind(code: UInt16(CSIP_HDR_CALL_ID))
    public static let cseq = HeaderKind(code: UInt16(CSIP_HDR_CSEQ))
    public static let maxForwards = HeaderKind(code: UInt16(CSIP_HDR_MAX_FORWARDS))
    public static let contentLength = HeaderKind(code: UInt16(CSIP_HDR_CONTENT_LENGTH))
    public static let contentType = HeaderKind(code: UInt16(CSIP_HDR_CONTENT_TYPE))
    public static let contact = HeaderKind(code: UInt16(CSIP_HDR_CONTACT))
    public static let route = HeaderKind(code: UInt16(CSIP_HDR_ROUTE))
    public static let recordRoute = HeaderKind(code: UInt16(CSIP_HDR_RECORD_ROUTE))
    public static let path = HeaderKind(code: UInt16(CSIP_HDR_PATH))
    public static let serviceRoute = HeaderKind(code: UInt16(CSIP_HDR_SERVICE_ROUTE))
    public static let contentEncoding = HeaderKind(code: UInt16(CSIP_HDR_CONTENT_ENCODING))
    public static let contentDisposition = HeaderKind(code: UInt16(CSIP_HDR_CONTENT_DISPOSITION))
    public static let contentLanguage = HeaderKind(code: UInt16(CSIP_HDR_CONTENT_LANGUAGE))
    public static let subject = HeaderKind(code: UInt16(CSIP_HDR_SUBJECT))
    public static let supported = HeaderKind(code: UInt16(CSIP_HDR_SUPPORTED))
    public static let require = HeaderKind(code: UInt16(CSIP_HDR_REQUIRE))
    public static let proxyRequire = HeaderKind(code: UInt16(CSIP_HDR_PROXY_REQUIRE))
    public static let unsupported = HeaderKind(code: UInt16(CSIP_HDR_UNSUPPORTED))
    public static let allow = HeaderKind(code: UInt16(CSIP_HDR_ALLOW))
    public static let allowEvents = HeaderKind(code: UInt16(CSIP_HDR_ALLOW_EVENTS))
    public static let event = HeaderKind(code: UInt16(CSIP_HDR_EVENT))
    public static let subscriptionState = HeaderKind(code: UInt16(CSIP_HDR_SUBSCRIPTION_STATE))
    public static let referTo = HeaderKind(code: UInt16(CSIP_HDR_REFER_TO))
    public static let referredBy = HeaderKind(code: UInt16(CSIP_HDR_REFERRED_BY))
    public static let sessionExpires = HeaderKind(code: UInt16(CSIP_HDR_SESSION_EXPIRES))
    public static let minSE = HeaderKind(code: UInt16(CSIP_HDR_MIN_SE))
    public static let acceptContact = HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_CONTACT))
    public static let rejectContact = HeaderKind(code: UInt16(CSIP_HDR_REJECT_CONTACT))
    public static let requestDisposition = HeaderKind(code: UInt16(CSIP_HDR_REQUEST_DISPOSITION))
    public static let identity = HeaderKind(code: UInt16(CSIP_HDR_IDENTITY))
    public static let identityInfo = HeaderKind(code: UInt16(CSIP_HDR_IDENTITY_INFO))
    public static let userAgent = HeaderKind(code: UInt16(CSIP_HDR_USER_AGENT))
    public static let server = HeaderKind(code: UInt16(CSIP_HDR_SERVER))
    public static let date = HeaderKind(code: UInt16(CSIP_HDR_DATE))
    public static let expires = HeaderKind(code: UInt16(CSIP_HDR_EXPIRES))
    public static let minExpires = HeaderKind(code: UInt16(CSIP_HDR_MIN_EXPIRES))
    public static let authorization = HeaderKind(code: UInt16(CSIP_HDR_AUTHORIZATION))
    public static let proxyAuthorization = HeaderKind(code: UInt16(CSIP_HDR_PROXY_AUTHORIZATION))
    public static let wwwAuthenticate = HeaderKind(code: UInt16(CSIP_HDR_WWW_AUTHENTICATE))
    public static let proxyAuthenticate = HeaderKind(code: UInt16(CSIP_HDR_PROXY_AUTHENTICATE))
    public static let authenticationInfo = HeaderKind(code: UInt16(CSIP_HDR_AUTHENTICATION_INFO))
    public static let accept = HeaderKind(code: UInt16(CSIP_HDR_ACCEPT))
    public static let acceptEncoding = HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_ENCODING))
    public static let acceptLanguage = HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_LANGUAGE))
    public static let retryAfter = HeaderKind(code: UInt16(CSIP_HDR_RETRY_AFTER))
    public static let timestamp = HeaderKind(code: UInt16(CSIP_HDR_TIMESTAMP))
    public static let warning = HeaderKind(code: UInt16(CSIP_HDR_WARNING))
    public static let pAssertedIdentity = HeaderKind(code: UInt16(CSIP_HDR_P_ASSERTED_IDENTITY))
    public static let pPreferredIdentity = HeaderKind(code: UInt16(CSIP_HDR_P_PREFERRED_IDENTITY))
    public static let privacy = HeaderKind(code: UInt16(CSIP_HDR_PRIVACY))
    public static let rseq = HeaderKind(code: UInt16(CSIP_HDR_RSEQ))
    public static let rack = HeaderKind(code: UInt16(CSIP_HDR_RACK))
    public static let mimeVersion = HeaderKind(code: UInt16(CSIP_HDR_MIME_VERSION))
    public static let organization = HeaderKind(code: UInt16(CSIP_HDR_ORGANIZATION))
    public static let priority = HeaderKind(code: UInt16(CSIP_HDR_PRIORITY))

    /// The canonical name ("Call-ID"), or nil for ``other``.
    public var canonicalName: String? { MessageScanner.canonicalName(ofKind: code) }

    public var description: String { canonicalName ?? "other" }
}

/// A set of header kinds as a 64-bit mask: which kinds a message holds (Kamailio's `parsed_flag`).
public struct HeaderSet: OptionSet, Hashable, Sendable {
    public let rawValue: UInt64

    @inlinable
    public init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    @inlinable
    public init(_ kind: HeaderKind) {
        self.rawValue = 1 << UInt64(kind.code)
    }

    @inlinable
    public func contains(_ kind: HeaderKind) -> Bool {
        rawValue & (1 << UInt64(kind.code)) != 0
    }
}
