public import SIPBytes

/// A request method: one of the methods SIP defines (RFC 3261 and extensions), or an extension token.
///
/// Methods are case-sensitive (RFC 3261 §7.1). Known methods have a bit each in ``MethodSet`` (Kamailio's
/// power-of-two method ids), so policy can test membership with one AND.
public struct SIPMethod: Hashable, Sendable, CustomStringConvertible {
    /// The methods we know by name; `extension` is any other token.
    public enum Known: UInt8, Sendable, CaseIterable {
        case invite, ack, bye, cancel, options, register, prack, subscribe, notify, publish, info, refer, message,
            update, `extension`

        public var name: String {
            switch self {
            case .invite: "INVITE"
            case .ack: "ACK"
            case .bye: "BYE"
            case .cancel: "CANCEL"
            case .options: "OPTIONS"
            case .register: "REGISTER"
            case .prack: "PRACK"
            case .subscribe: "SUBSCRIBE"
            case .notify: "NOTIFY"
            case .publish: "PUBLISH"
            case .info: "INFO"
            case .refer: "REFER"
            case .message: "MESSAGE"
            case .update: "UPDATE"
            case .extension: "extension"
            }
        }
    }

    public let known: Known
    /// Where the method token is in the message.
    public let span: ByteSpan

    public init(known: Known, span: ByteSpan) {
        self.known = known
        self.span = span
    }

    /// Recognises the token at `span`, which must already be a valid token.
    @inline(__always)
    static func classify(_ bytes: PacketBytes, _ span: ByteSpan) -> SIPMethod {
        // Methods are case-sensitive (RFC 3261 §7.1). Up to 8 bytes compare as one word.
        // Dispatch on the length first: then one or two word comparisons decide.
        let known: Known
        let word = span.count <= 8 ? bytes.word(at: span.start, length: span.count) : 0
        switch span.count {
        case 3: known = word == ASCII.word("ACK") ? .ack : word == ASCII.word("BYE") ? .bye : .extension
        case 4: known = word == ASCII.word("INFO") ? .info : .extension
        case 5: known = word == ASCII.word("PRACK") ? .prack : word == ASCII.word("REFER") ? .refer : .extension
        case 6:
            switch word {
            case ASCII.word("INVITE"): known = .invite
            case ASCII.word("CANCEL"): known = .cancel
            case ASCII.word("NOTIFY"): known = .notify
            case ASCII.word("UPDATE"): known = .update
            default: known = .extension
            }
        case 7:
            switch word {
            case ASCII.word("OPTIONS"): known = .options
            case ASCII.word("PUBLISH"): known = .publish
            case ASCII.word("MESSAGE"): known = .message
            default: known = .extension
            }
        case 8: known = word == ASCII.word("REGISTER") ? .register : .extension
        case 9: known = bytes.equals(span, "SUBSCRIBE") ? .subscribe : .extension
        default: known = .extension
        }
        return SIPMethod(known: known, span: span)
    }

    /// True when both name the same method (extension methods compared byte for byte).
    @inline(__always)
    public func isSameMethod(as other: SIPMethod, in bytes: PacketBytes) -> Bool {
        if known != other.known { return false }
        if known != .extension { return true }
        return bytes.equals(span, other.span)
    }

    public var description: String { known.name }
}

/// A set of known methods as a bit mask.
public struct MethodSet: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public init(_ method: SIPMethod.Known) {
        self.rawValue = 1 << UInt16(method.rawValue)
    }

    public static let invite = MethodSet(.invite)
    public static let ack = MethodSet(.ack)
    public static let bye = MethodSet(.bye)
    public static let cancel = MethodSet(.cancel)
    public static let options = MethodSet(.options)
    public static let register = MethodSet(.register)
    public static let subscribe = MethodSet(.subscribe)
    public static let notify = MethodSet(.notify)
    /// Methods that create a dialog (RFC 3261 §12, RFC 6665): where a proxy adds Record-Route.
    public static let dialogCreating: MethodSet = [.invite, .subscribe, MethodSet(.refer)]

    public func contains(_ method: SIPMethod.Known) -> Bool {
        rawValue & (1 << UInt16(method.rawValue)) != 0
    }
}
