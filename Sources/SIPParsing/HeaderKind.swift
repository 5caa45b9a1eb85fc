import SIPBytes
public import CSIPScan

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

    @inlinable public static var other: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_OTHER)) }
    @inlinable public static var via: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_VIA)) }
    @inlinable public static var from: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_FROM)) }
    @inlinable public static var to: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_TO)) }
    @inlinable public static var callID: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CALL_ID)) }
    @inlinable public static var cseq: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CSEQ)) }
    @inlinable public static var maxForwards: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_MAX_FORWARDS)) }
    @inlinable public static var contentLength: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTENT_LENGTH)) }
    @inlinable public static var contentType: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTENT_TYPE)) }
    @inlinable public static var contact: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTACT)) }
    @inlinable public static var route: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ROUTE)) }
    @inlinable public static var recordRoute: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_RECORD_ROUTE)) }
    @inlinable public static var path: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PATH)) }
    @inlinable public static var serviceRoute: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SERVICE_ROUTE)) }
    @inlinable public static var contentEncoding: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTENT_ENCODING)) }
    @inlinable public static var contentDisposition: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTENT_DISPOSITION)) }
    @inlinable public static var contentLanguage: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_CONTENT_LANGUAGE)) }
    @inlinable public static var subject: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SUBJECT)) }
    @inlinable public static var supported: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SUPPORTED)) }
    @inlinable public static var require: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_REQUIRE)) }
    @inlinable public static var proxyRequire: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PROXY_REQUIRE)) }
    @inlinable public static var unsupported: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_UNSUPPORTED)) }
    @inlinable public static var allow: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ALLOW)) }
    @inlinable public static var allowEvents: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ALLOW_EVENTS)) }
    @inlinable public static var event: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_EVENT)) }
    @inlinable public static var subscriptionState: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SUBSCRIPTION_STATE)) }
    @inlinable public static var referTo: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_REFER_TO)) }
    @inlinable public static var referredBy: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_REFERRED_BY)) }
    @inlinable public static var sessionExpires: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SESSION_EXPIRES)) }
    @inlinable public static var minSE: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_MIN_SE)) }
    @inlinable public static var acceptContact: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_CONTACT)) }
    @inlinable public static var rejectContact: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_REJECT_CONTACT)) }
    @inlinable public static var requestDisposition: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_REQUEST_DISPOSITION)) }
    @inlinable public static var identity: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_IDENTITY)) }
    @inlinable public static var identityInfo: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_IDENTITY_INFO)) }
    @inlinable public static var userAgent: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_USER_AGENT)) }
    @inlinable public static var server: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_SERVER)) }
    @inlinable public static var date: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_DATE)) }
    @inlinable public static var expires: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_EXPIRES)) }
    @inlinable public static var minExpires: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_MIN_EXPIRES)) }
    @inlinable public static var authorization: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_AUTHORIZATION)) }
    @inlinable public static var proxyAuthorization: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PROXY_AUTHORIZATION)) }
    @inlinable public static var wwwAuthenticate: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_WWW_AUTHENTICATE)) }
    @inlinable public static var proxyAuthenticate: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PROXY_AUTHENTICATE)) }
    @inlinable public static var authenticationInfo: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_AUTHENTICATION_INFO)) }
    @inlinable public static var accept: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ACCEPT)) }
    @inlinable public static var acceptEncoding: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_ENCODING)) }
    @inlinable public static var acceptLanguage: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ACCEPT_LANGUAGE)) }
    @inlinable public static var retryAfter: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_RETRY_AFTER)) }
    @inlinable public static var timestamp: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_TIMESTAMP)) }
    @inlinable public static var warning: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_WARNING)) }
    @inlinable public static var pAssertedIdentity: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_P_ASSERTED_IDENTITY)) }
    @inlinable public static var pPreferredIdentity: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_P_PREFERRED_IDENTITY)) }
    @inlinable public static var privacy: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PRIVACY)) }
    @inlinable public static var rseq: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_RSEQ)) }
    @inlinable public static var rack: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_RACK)) }
    @inlinable public static var mimeVersion: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_MIME_VERSION)) }
    @inlinable public static var organization: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_ORGANIZATION)) }
    @inlinable public static var priority: HeaderKind { HeaderKind(code: UInt16(CSIP_HDR_PRIORITY)) }

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
