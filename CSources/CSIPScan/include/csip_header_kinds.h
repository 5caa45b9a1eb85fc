/*
 * THE table of SIP header kinds: one line per kind, in one place.
 *
 * X(ENUM_SUFFIX, "Canonical-Name", 'compact-form' or 0)
 *
 * The C enum, the name lookup, the classifier and Swift's HeaderKind are all generated from this list, so adding a
 * header is a one-line change (contrast Kamailio's hf.h, which needs five). The order fixes the numeric values, which
 * Swift uses as bit positions in a 64-bit HeaderSet: keep it below 64 entries and append only.
 * Compact forms: RFC 3261 §7.3.3 and the IANA SIP parameter registry.
 */
#define CSIP_HEADER_KINDS(X)                          \
    X(VIA, "Via", 'v')                                \
    X(FROM, "From", 'f')                              \
    X(TO, "To", 't')                                  \
    X(CALL_ID, "Call-ID", 'i')                        \
    X(CSEQ, "CSeq", 0)                                \
    X(MAX_FORWARDS, "Max-Forwards", 0)                \
    X(CONTENT_LENGTH, "Content-Length", 'l')          \
    X(CONTENT_TYPE, "Content-Type", 'c')              \
    X(CONTACT, "Contact", 'm')                        \
    X(ROUTE, "Route", 0)                              \
    X(RECORD_ROUTE, "Record-Route", 0)                \
    X(PATH, "Path", 0)                                \
    X(SERVICE_ROUTE, "Service-Route", 0)              \
    X(CONTENT_ENCODING, "Content-Encoding", 'e')      \
    X(CONTENT_DISPOSITION, "Content-Disposition", 0)  \
    X(CONTENT_LANGUAGE, "Content-Language", 0)        \
    X(SUBJECT, "Subject", 's')                        \
    X(SUPPORTED, "Supported", 'k')                    \
    X(REQUIRE, "Require", 0)                          \
    X(PROXY_REQUIRE, "Proxy-Require", 0)              \
    X(UNSUPPORTED, "Unsupported", 0)                  \
    X(ALLOW, "Allow", 0)                              \
    X(ALLOW_EVENTS, "Allow-Events", 'u')              \
    X(EVENT, "Event", 'o')                            \
    X(SUBSCRIPTION_STATE, "Subscription-State", 0)    \
    X(REFER_TO, "Refer-To", 'r')                      \
    X(REFERRED_BY, "Referred-By", 'b')                \
    X(SESSION_EXPIRES, "Session-Expires", 'x')        \
    X(MIN_SE, "Min-SE", 0)                            \
    X(ACCEPT_CONTACT, "Accept-Contact", 'a')          \
    X(REJECT_CONTACT, "Reject-Contact", 'j')          \
    X(REQUEST_DISPOSITION, "Request-Disposition", 'd')\
    X(IDENTITY, "Identity", 'y')                      \
    X(IDENTITY_INFO, "Identity-Info", 'n')            \
    X(USER_AGENT, "User-Agent", 0)                    \
    X(SERVER, "Server", 0)                            \
    X(DATE, "Date", 0)                                \
    X(EXPIRES, "Expires", 0)                          \
    X(MIN_EXPIRES, "Min-Expires", 0)                  \
    X(AUTHORIZATION, "Authorization", 0)              \
    X(PROXY_AUTHORIZATION, "Proxy-Authorization", 0)  \
    X(WWW_AUTHENTICATE, "WWW-Authenticate", 0)        \
    X(PROXY_AUTHENTICATE, "Proxy-Authenticate", 0)    \
    X(AUTHENTICATION_INFO, "Authentication-Info", 0)  \
    X(ACCEPT, "Accept", 0)                            \
    X(ACCEPT_ENCODING, "Accept-Encoding", 0)          \
    X(ACCEPT_LANGUAGE, "Accept-Language", 0)          \
    X(RETRY_AFTER, "Retry-After", 0)                  \
    X(TIMESTAMP, "Timestamp", 0)                      \
    X(WARNING, "Warning", 0)                          \
    X(P_ASSERTED_IDENTITY, "P-Asserted-Identity", 0)  \
    X(P_PREFERRED_IDENTITY, "P-Preferred-Identity", 0)\
    X(PRIVACY, "Privacy", 0)                          \
    X(RSEQ, "RSeq", 0)                                \
    X(RACK, "RAck", 0)                                \
    X(MIME_VERSION, "MIME-Version", 0)                \
    X(ORGANIZATION, "Organization", 0)                \
    X(PRIORITY, "Priority", 0)
