public import CSIPScan

/// Which delimiter search the C scanner uses. `auto` picks the best the CPU supports at run time.
public enum SIMDLevel: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case auto = 0
    case scalar = 1
    case sse42 = 2
    case avx2 = 3

    public var description: String {
        switch self {
        case .auto: "auto"
        case .scalar: "scalar"
        case .sse42: "sse4.2"
        case .avx2: "avx2"
        }
    }
}

/// Why the scanner could not be set up.
public enum ScannerSetupError: Error, Equatable {
    /// The CPU lacks the requested SIMD level.
    case unsupportedSIMDLevel(SIMDLevel)
}

/// Limits the scanner enforces, in bytes or counts.
public struct ScanLimits: Sendable, Equatable {
    /// Largest message including its body. Default: 65,536 bytes.
    public var maxMessageSize: UInt32
    /// Longest start line, or header including its folded lines. Default: 8,192 bytes.
    public var maxLineLength: UInt32
    /// Most header lines in one message. Default: 128.
    public var maxHeaders: UInt32

    public init(maxMessageSize: UInt32 = 65_536, maxLineLength: UInt32 = 8_192, maxHeaders: UInt32 = 128) {
        self.maxMessageSize = maxMessageSize
        self.maxLineLength = maxLineLength
        self.maxHeaders = maxHeaders
    }
}

/// Flags the scanner sets on a header line.
public struct HeaderLineFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    // Computed, not `static let`: a stored static costs a lazy-initialisation check on every use.
    /// The value continues over folded lines: CRLF + SP/HTAB may occur inside it.
    @inlinable public static var folded: HeaderLineFlags { HeaderLineFlags(rawValue: UInt16(CSIP_HEADER_FOLDED)) }
    /// Whitespace stood between the name and the colon: legal (RFC 3261 `HCOLON`), but a smuggling vector on the
    /// headers a downstream parser frames or routes by (the validator's `no_space_before_colon` lists).
    @inlinable public static var spaceBeforeColon: HeaderLineFlags { HeaderLineFlags(rawValue: UInt16(CSIP_HEADER_SPACE_BEFORE_COLON)) }
    /// The name was a one-letter compact form.
    @inlinable public static var compact: HeaderLineFlags { HeaderLineFlags(rawValue: UInt16(CSIP_HEADER_COMPACT)) }
    /// The header had continuation lines (its value may even start on one).
    @inlinable public static var continued: HeaderLineFlags { HeaderLineFlags(rawValue: UInt16(CSIP_HEADER_CONTINUED)) }
    /// The value holds a control character other than HTAB; legal only as a quoted-pair in a quoted string.
    @inlinable public static var controlCharacters: HeaderLineFlags { HeaderLineFlags(rawValue: UInt16(CSIP_HEADER_CONTROL_CHARS)) }
}

/// One header line as scanned: spans of the name and the trimmed value, the kind code from the C table, flags.
public struct HeaderLine: Equatable, Sendable {
    public var name: ByteSpan
    public var value: ByteSpan
    /// Index into the C header table (`csip_header_kinds.h`); 0 is "other".
    public var kindCode: UInt16
    public var flags: HeaderLineFlags

    @inlinable
    public init(name: ByteSpan, value: ByteSpan, kindCode: UInt16, flags: HeaderLineFlags) {
        self.name = name
        self.value = value
        self.kindCode = kindCode
        self.flags = flags
    }
}

/// The scanner's failure reasons, one to one with `CSIP_ERR_*`.
public enum ScanError: UInt32, Sendable, CaseIterable {
    case empty = 1
    case bareLineFeed
    case bareCarriageReturn
    case nulByte
    case controlCharacter
    case lineTooLong
    case tooManyHeaders
    case messageTooLarge
    case emptyHeaderName
    case invalidHeaderName
    case missingColon
    case foldedStartLine
}

/// What one scan found.
public enum ScanOutcome: Equatable, Sendable {
    /// The start line and `headerCount` headers (in the scanner's ``HeaderTable``); the body starts at `bodyOffset`.
    case complete(startLine: ByteSpan, headerCount: Int, bodyOffset: Int, headerFlags: HeaderLineFlags)
    /// The bytes end before the headers do.
    case incomplete
    /// A rule was broken at `offset`.
    case invalid(ScanError, offset: Int)
}

/// The header lines of the last scanned message, in a buffer allocated once and reused for every message.
///
/// Reading is safe Swift: the storage is owned here and every index is checked. Each scan bumps `generation`, so
/// a holder of an older message can tell (and trap) when the table now describes a different one.
public final class HeaderTable {
    @usableFromInline
    let storage: UnsafeMutableBufferPointer<csip_header>
    /// Count and generation live in allocated memory, not stored properties: writes to class properties cost a
    /// run-time exclusivity check each, and these are written for every message.
    @usableFromInline
    let state: UnsafeMutablePointer<(count: Int, generation: UInt64)>

    /// Number of valid lines.
    @inlinable public var count: Int { state.pointee.count }
    /// Incremented by every scan.
    @inlinable public var generation: UInt64 { state.pointee.generation }

    public var capacity: Int { storage.count }

    init(capacity: Int) {
        storage = .allocate(capacity: capacity)
        storage.initialize(repeating: csip_header())
        state = .allocate(capacity: 1)
        state.initialize(to: (0, 0))
    }

    deinit {
        storage.deallocate()
        state.deallocate()
    }

    @inlinable
    public subscript(index: Int) -> HeaderLine {
        precondition(index >= 0 && index < count, "header index out of range")
        let line = storage[index]
        return HeaderLine(
            name: ByteSpan(line.name),
            value: ByteSpan(line.value),
            kindCode: line.kind,
            flags: HeaderLineFlags(rawValue: line.flags)
        )
    }

    /// The kind code of line `index`, without building the whole ``HeaderLine``.
    @inlinable
    public func kindCode(at index: Int) -> UInt16 {
        precondition(index >= 0 && index < count, "header index out of range")
        return storage[index].kind
    }

    /// Index of the first line after `index` (and before `limit`, capped at ``count``) whose kind code is `code`, or
    /// nil: one bounds check for the whole walk instead of one per line.
    @inlinable
    public func nextIndex(ofKindCode code: UInt16, after index: Int, limit: Int) -> Int? {
        precondition(index >= -1, "header index out of range")
        let end = min(limit, count)  // count <= storage.count: scan() checks it
        var i = index + 1
        while i < end {
            if storage[i].kind == code { return i }
            i += 1
        }
        return nil
    }

    /// Index of the first line before `limit` (capped at ``count``) that carries every flag of `flags` and whose kind
    /// code's bit is set in `kindMask`, or nil: one bounds check for the whole walk, as in ``nextIndex(ofKindCode:after:limit:)``.
    @inlinable
    public func firstIndex(flagged flags: HeaderLineFlags, kindMask: UInt64, limit: Int) -> Int? {
        let end = min(limit, count)
        var i = 0
        while i < end {
            let line = storage[i]
            // A kind code of 64 or more would shift the bit out (Swift's `<<` gives 0 then): never in the mask.
            if line.flags & flags.rawValue == flags.rawValue, kindMask & (1 << UInt64(line.kind)) != 0 { return i }
            i += 1
        }
        return nil
    }
}

/// Runs the C span scanner over one message. One per worker (not thread-safe: it owns the reusable header table).
public final class MessageScanner {
    /// Allocated once; a stored struct passed as `&context` would cost an exclusivity check per scan.
    private let context: UnsafeMutablePointer<csip_scanner>
    /// The limits and result of a scan, also allocated once: locals passed to C by address would cost a stack canary
    /// check and a zeroing per scan.
    private let limitsBuffer: UnsafeMutablePointer<csip_scan_limits>
    @usableFromInline let resultBuffer: UnsafeMutablePointer<csip_scan_result>
    /// The SIMD level actually chosen.
    public let simdLevel: SIMDLevel
    /// Header lines of the last scan.
    public let headers: HeaderTable

    public init(simd: SIMDLevel = .auto, headerCapacity: Int = 256) throws(ScannerSetupError) {
        precondition(headerCapacity > 0 && headerCapacity <= Int(UInt16.max), "header capacity out of range")
        let context = UnsafeMutablePointer<csip_scanner>.allocate(capacity: 1)
        context.initialize(to: csip_scanner())
        let status = csip_scanner_init(context, simd.rawValue)
        guard status == 0 else {
            context.deallocate()
            throw .unsupportedSIMDLevel(simd)
        }
        self.context = context
        simdLevel = SIMDLevel(rawValue: context.pointee.simd_level) ?? .scalar
        headers = HeaderTable(capacity: headerCapacity)
        limitsBuffer = .allocate(capacity: 1)
        limitsBuffer.initialize(to: csip_scan_limits())
        resultBuffer = .allocate(capacity: 1)
        resultBuffer.initialize(to: csip_scan_result())
    }

    deinit {
        context.deallocate()
        limitsBuffer.deallocate()
        resultBuffer.deallocate()
    }

    /// True when this CPU can run `level`.
    public static func supports(_ level: SIMDLevel) -> Bool {
        var probe = csip_scanner()
        return csip_scanner_init(&probe, level.rawValue) == 0
    }

    /// Bit k set when the last complete scan met a header of kind code k (0, "other", included).
    @inlinable public var lastHeaderKinds: UInt64 { resultBuffer.pointee.header_kinds }

    /// Scans `packet`. On `.complete`, ``headers`` describes its header lines until the next scan.
    public func scan(_ packet: PacketBytes, limits: ScanLimits = ScanLimits()) -> ScanOutcome {
        limitsBuffer.pointee = csip_scan_limits(
            max_message_size: limits.maxMessageSize,
            max_line_length: limits.maxLineLength,
            max_headers: limits.maxHeaders
        )
        headers.state.pointee.generation &+= 1
        headers.state.pointee.count = 0
        let base = packet.base.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let status = csip_scan_message(
            context, base, packet.count, limitsBuffer, headers.storage.baseAddress, UInt32(headers.capacity),
            resultBuffer
        )
        let result = resultBuffer.pointee
        switch status {
        case Int32(CSIP_SCAN_COMPLETE):
            let count = Int(result.header_count)
            // Validate the C side's spans once, here at the fence; everything above reads within them.
            precondition(count <= headers.capacity && Int(result.body_offset) <= packet.count)
            var furthest = 0  // one check for all spans: the furthest end of any
            for i in 0..<count {
                let line = headers.storage[i]
                furthest = max(furthest, Int(line.name.off) + Int(line.name.len), Int(line.value.off) + Int(line.value.len))
            }
            precondition(furthest <= packet.count, "scanner span out of bounds")
            headers.state.pointee.count = count
            return .complete(
                startLine: ByteSpan(result.start_line),
                headerCount: count,
                bodyOffset: Int(result.body_offset),
                headerFlags: HeaderLineFlags(rawValue: UInt16(truncatingIfNeeded: result.header_flags))
            )
        case Int32(CSIP_SCAN_INCOMPLETE):
            return .incomplete
        case Int32(CSIP_SCAN_INVALID):
            let error = ScanError(rawValue: result.error) ?? .controlCharacter
            return .invalid(error, offset: Int(result.error_offset))
        default:
            // -EINVAL: only possible with a message over 4 GiB, which no caller can hold.
            return .invalid(.messageTooLarge, offset: 0)
        }
    }

    /// Kind code of a header name (full or compact form, any case); 0 when it is not in the table.
    public static func classifyHeader(_ name: [UInt8]) -> UInt16 {
        name.withUnsafeBufferPointer { UInt16(csip_classify_header($0.baseAddress, $0.count)) }
    }

    /// Kind code of the header name at `range` of `bytes`, without copying it out.
    public static func classifyHeader(_ bytes: [UInt8], _ range: Range<Int>) -> UInt16 {
        bytes.withUnsafeBufferPointer { buffer in
            UInt16(csip_classify_header(buffer.baseAddress.map { $0 + range.lowerBound }, range.count))
        }
    }

    /// Canonical name for a kind code, or nil for 0 ("other").
    public static func canonicalName(ofKind code: UInt16) -> String? {
        guard let name = csip_header_kind_name(UInt32(code)) else { return nil }
        return String(cString: name)
    }

    /// Number of kinds in the C table, "other" included.
    public static var kindCount: Int { Int(CSIP_HDR_KIND_COUNT) }

    /// Index of the first control character in `bytes[from..<to]` using `level` (for cross-checking SIMD paths).
    public static func findControl(in bytes: [UInt8], from: Int, to: Int, level: SIMDLevel) -> Int? {
        var probe = csip_scanner()
        guard csip_scanner_init(&probe, level.rawValue) == 0 else { return nil }
        return bytes.withUnsafeBufferPointer { Int(csip_find_control(&probe, $0.baseAddress, from, to)) }
    }
}
