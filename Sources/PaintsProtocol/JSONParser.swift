// PaintsProtocol/JSONParser: parses UTF-8 bytes as strict RFC 8259 JSON into a JSONValue, depth-limited and in linear time.

/// Why JSON text was refused, and where: `offset` is a 0-based byte offset into the input.
struct JSONParseFailure: Error {
    var what: String
    var offset: Int
}

/// A strict RFC 8259 parser over UTF-8 bytes.
///
/// Refuses everything the grammar does not allow (trailing commas, leading zeros, bare control characters, escapes
/// other than the eight of the RFC and `\uXXXX`, whitespace other than space/tab/LF/CR, anything after the value),
/// invalid UTF-8 (overlongs, encoded surrogates, bytes over F4, truncated sequences), byte order marks, lone surrogate
/// escapes (a Swift `String` cannot hold them), numbers beyond `Double`'s range, duplicate object keys, and nesting deeper
/// than `maxDepth`. Each byte is looked at a bounded number of times, and recursion never goes deeper than `maxDepth`.
struct JSONParser {
    /// Deepest nesting of arrays and objects accepted (`[[1]]` is 2 deep).
    static let maxDepth = 64

    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0
    private var depth = 0

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// Parses one JSON text: optional whitespace, a value of any type, optional whitespace, nothing else.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONParseFailure) -> JSONValue {
        var parser = JSONParser(bytes)
        try parser.checkEncodingMarks()
        parser.skipWhitespace()
        if parser.i == bytes.count {
            throw JSONParseFailure(what: bytes.isEmpty ? "empty input" : "no value, only whitespace", offset: parser.i)
        }
        let value = try parser.value()
        parser.skipWhitespace()
        if parser.i < bytes.count {
            throw parser.fail("unexpected \(parser.describe(parser.i)) after the JSON value")
        }
        return value
    }

    // MARK: bytes

    private static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\"), slash = UInt8(ascii: "/")
    private static let comma = UInt8(ascii: ","), colon = UInt8(ascii: ":")
    private static let openBracket = UInt8(ascii: "["), closeBracket = UInt8(ascii: "]")
    private static let openBrace = UInt8(ascii: "{"), closeBrace = UInt8(ascii: "}")
    private static let minus = UInt8(ascii: "-"), plus = UInt8(ascii: "+"), dot = UInt8(ascii: ".")
    private static let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")

    private func fail(_ what: String, at offset: Int? = nil) -> JSONParseFailure {
        JSONParseFailure(what: what, offset: offset ?? i)
    }

    /// The byte at `offset`, in words, for messages.
    private func describe(_ offset: Int) -> String {
        guard offset < bytes.count else { return "end of input" }
        let b = bytes[offset]
        if b == 0 { return "NUL byte (is this UTF-16 or UTF-32? JSON here must be UTF-8)" }
        if b >= 0x21 && b < 0x7F { return "character '\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(Self.hex(b))"
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
    }

    private static func isDigit(_ b: UInt8) -> Bool { b >= zero && b <= nine }

    /// Byte order marks at the start: UTF-8's is not JSON (RFC 8259 section 8.1), UTF-16's and UTF-32's mean the wrong encoding.
    private func checkEncodingMarks() throws(JSONParseFailure) {
        let n = bytes.count
        if n >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF {
            throw fail("a byte order mark (EF BB BF) is not allowed", at: 0)
        }
        if n >= 2, (bytes[0] == 0xFE && bytes[1] == 0xFF) || (bytes[0] == 0xFF && bytes[1] == 0xFE) {
            throw fail("a UTF-16 byte order mark (\(Self.hex(bytes[0])) \(Self.hex(bytes[1]))): JSON here must be UTF-8", at: 0)
        }
    }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    // MARK: values

    private mutating func value() throws(JSONParseFailure) -> JSONValue {
        guard i < bytes.count else { throw fail("unexpected end of input, expected a value") }
        switch bytes[i] {
        case Self.openBrace: return try object()
        case Self.openBracket: return try array()
        case Self.quote: return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case Self.minus, Self.zero...Self.nine: return .number(try number())
        default: throw fail("unexpected \(describe(i)), expected a value")
        }
    }

    private mutating func literal(_ word: StaticString) throws(JSONParseFailure) {
        let start = i
        let n = word.utf8CodeUnitCount
        let matches = n <= bytes.count - i && (0..<n).allSatisfy { bytes[start + $0] == word.utf8Start[$0] }
        guard matches else { throw fail("invalid literal (expected '\(word)')", at: start) }
        i += n
    }

    /// Counts one more level of nesting for the container opening at `i`.
    private mutating func enter() throws(JSONParseFailure) {
        guard depth < Self.maxDepth else {
            throw fail("arrays and objects nested deeper than \(Self.maxDepth) levels")
        }
        depth += 1
    }

    private mutating func array() throws(JSONParseFailure) -> JSONValue {
        let open = i
        try enter()
        i += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == Self.closeBracket {
            i += 1
            depth -= 1
            return .array(items)
        }
        while true {
            items.append(try value())
            skipWhitespace()
            guard i < bytes.count else {
                throw fail("unexpected end of input in the array opened at byte \(open), expected ',' or ']'")
            }
            switch bytes[i] {
            case Self.comma:
                let comma = i
                i += 1
                skipWhitespace()
                if i < bytes.count, bytes[i] == Self.closeBracket { throw fail("trailing comma before ']'", at: comma) }
            case Self.closeBracket:
                i += 1
                depth -= 1
                return .array(items)
            default:
                throw fail("unexpected \(describe(i)) in an array, expected ',' or ']'")
            }
        }
    }

    private mutating func object() throws(JSONParseFailure) -> JSONValue {
        let open = i
        try enter()
        i += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if i < bytes.count, bytes[i] == Self.closeBrace {
            i += 1
            depth -= 1
            return .object(members)
        }
        while true {
            guard i < bytes.count else {
                throw fail("unexpected end of input in the object opened at byte \(open), expected a key")
            }
            guard bytes[i] == Self.quote else { throw fail("unexpected \(describe(i)), expected a string key") }
            let keyStart = i
            let key = try string()
            if members[key] != nil {
                throw fail("duplicate key \(Self.quoted(key))", at: keyStart)
            }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == Self.colon else {
                throw fail("unexpected \(describe(i)) after key \(Self.quoted(key)), expected ':'")
            }
            i += 1
            skipWhitespace()
            members[key] = try value()
            skipWhitespace()
            guard i < bytes.count else {
                throw fail("unexpected end of input in the object opened at byte \(open), expected ',' or '}'")
            }
            switch bytes[i] {
            case Self.comma:
                let comma = i
                i += 1
                skipWhitespace()
                if i < bytes.count, bytes[i] == Self.closeBrace { throw fail("trailing comma before '}'", at: comma) }
            case Self.closeBrace:
                i += 1
                depth -= 1
                return .object(members)
            default:
                throw fail("unexpected \(describe(i)) in an object, expected ',' or '}'")
            }
        }
    }

    /// A key for a message: JSON-quoted, shortened when long.
    private static func quoted(_ key: String) -> String {
        let shown = key.unicodeScalars.count > 64 ? String(String.UnicodeScalarView(key.unicodeScalars.prefix(64))) + "..." : key
        return JSONValue.string(shown).serializedString()
    }

    // MARK: numbers

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, converted to the nearest `Double`.
    private mutating func number() throws(JSONParseFailure) -> Double {
        let start = i
        let negative = bytes[i] == Self.minus
        if negative { i += 1 }
        guard i < bytes.count, Self.isDigit(bytes[i]) else {
            throw fail("unexpected \(describe(i)) after '-', expected a digit")
        }
        var integer = 0
        var integerDigits = 0
        if bytes[i] == Self.zero {
            i += 1
            if i < bytes.count, Self.isDigit(bytes[i]) { throw fail("a number may not have leading zeros", at: start) }
            integerDigits = 1
        } else {
            while i < bytes.count, Self.isDigit(bytes[i]) {
                if integerDigits < 15 { integer = integer * 10 + Int(bytes[i] - Self.zero) }
                integerDigits += 1
                i += 1
            }
        }
        var simple = integerDigits <= 15
        if i < bytes.count, bytes[i] == Self.dot {
            simple = false
            i += 1
            guard i < bytes.count, Self.isDigit(bytes[i]) else {
                throw fail("unexpected \(describe(i)) after '.', a fraction needs digits")
            }
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            simple = false
            i += 1
            if i < bytes.count, bytes[i] == Self.plus || bytes[i] == Self.minus { i += 1 }
            guard i < bytes.count, Self.isDigit(bytes[i]) else {
                throw fail("unexpected \(describe(i)) in an exponent, expected a digit")
            }
            while i < bytes.count, Self.isDigit(bytes[i]) { i += 1 }
        }
        if simple {
            // At most 15 digits: exact in a Double. -0 stays -0.0 as the RFC's grammar reads it.
            return negative ? -Double(integer) : Double(integer)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
        guard let x = Double(text), x.isFinite else {
            let shown = text.count > 40 ? String(text.prefix(40)) + "..." : text
            throw fail("number out of range (\(shown) is beyond the largest 64-bit float, about 1.8e308)", at: start)
        }
        return x
    }

    // MARK: strings

    /// A string at `i` (on its opening quote): UTF-8 checked, escapes decoded.
    private mutating func string() throws(JSONParseFailure) -> String {
        let open = i
        i += 1
        var segment = i
        var decoded: [UInt8] = []
        var escaped = false
        while true {
            guard i < bytes.count else { throw fail("unterminated string (opened at byte \(open))") }
            let b = bytes[i]
            if b == Self.quote {
                let tail = UnsafeBufferPointer(rebasing: bytes[segment..<i])
                i += 1
                if !escaped { return String(decoding: tail, as: UTF8.self) }
                decoded.append(contentsOf: tail)
                return String(decoding: decoded, as: UTF8.self)
            } else if b == Self.backslash {
                escaped = true
                decoded.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[segment..<i]))
                try escape(into: &decoded)
                segment = i
            } else if b < 0x20 {
                throw fail("control character U+00\(Self.hex(b)) in a string (it must be escaped)")
            } else if b < 0x80 {
                i += 1
            } else {
                try utf8Sequence()
            }
        }
    }

    /// An escape at `i` (on its backslash), appended to `out` as UTF-8.
    private mutating func escape(into out: inout [UInt8]) throws(JSONParseFailure) {
        let start = i
        i += 1
        guard i < bytes.count else { throw fail("unterminated string (input ends in an escape)", at: start) }
        let c = bytes[i]
        i += 1
        switch c {
        case Self.quote, Self.backslash, Self.slash: out.append(c)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let unit = try hex4(escapeAt: start)
            var scalar = unit
            if (0xD800...0xDBFF).contains(unit) {
                let lowStart = i
                guard i + 1 < bytes.count, bytes[i] == Self.backslash, bytes[i + 1] == UInt8(ascii: "u") else {
                    throw fail(Self.loneSurrogate(unit, "a high surrogate not followed by a \\u low surrogate"), at: start)
                }
                i += 2
                let low = try hex4(escapeAt: lowStart)
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw fail(Self.loneSurrogate(unit, "a high surrogate followed by \\u\(Self.hex16(low)), not a low surrogate"),
                               at: start)
                }
                scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(unit) {
                throw fail(Self.loneSurrogate(unit, "a low surrogate with no high surrogate before it"), at: start)
            }
            // Not a surrogate, or a combined pair: always a valid scalar.
            UTF8.encode(Unicode.Scalar(scalar)!) { out.append($0) }
        default:
            throw fail("invalid escape '\\' followed by \(describe(i - 1)) (allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
                       at: start)
        }
    }

    private static func loneSurrogate(_ unit: UInt32, _ why: String) -> String {
        "lone surrogate escape \\u\(hex16(unit)) (\(why)): it is not a Unicode character, and a string cannot hold it"
    }

    private static func hex16(_ unit: UInt32) -> String { hex(UInt8(unit >> 8)) + hex(UInt8(unit & 0xFF)) }

    /// Four hex digits at `i`, after the `\u` of the escape at `escapeAt`.
    private mutating func hex4(escapeAt start: Int) throws(JSONParseFailure) -> UInt32 {
        var unit: UInt32 = 0
        for _ in 0..<4 {
            guard i < bytes.count else { throw fail("\\u needs four hex digits, the input ends", at: start) }
            let b = bytes[i]
            let digit: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = b - UInt8(ascii: "A") + 10
            default: throw fail("\\u needs four hex digits, got \(describe(i))", at: start)
            }
            unit = unit << 4 | UInt32(digit)
            i += 1
        }
        return unit
    }

    /// Checks the multi-byte UTF-8 sequence at `i` (a lead byte >= 0x80) against RFC 3629's table and steps over it.
    private mutating func utf8Sequence() throws(JSONParseFailure) {
        let start = i
        let lead = bytes[start]
        let count: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        var secondProblem = ""
        switch lead {
        case 0xC2...0xDF: count = 1
        case 0xE0: count = 2; secondRange = 0xA0...0xBF; secondProblem = "an overlong encoding"
        case 0xE1...0xEC, 0xEE...0xEF: count = 2
        case 0xED: count = 2; secondRange = 0x80...0x9F; secondProblem = "a UTF-16 surrogate encoded in UTF-8"
        case 0xF0: count = 3; secondRange = 0x90...0xBF; secondProblem = "an overlong encoding"
        case 0xF1...0xF3: count = 3
        case 0xF4: count = 3; secondRange = 0x80...0x8F; secondProblem = "a code point above U+10FFFF"
        case 0x80...0xBF: throw fail("invalid UTF-8: continuation byte 0x\(Self.hex(lead)) without a lead byte")
        case 0xC0, 0xC1: throw fail("invalid UTF-8: byte 0x\(Self.hex(lead)) starts an overlong encoding")
        default: throw fail("invalid UTF-8: byte 0x\(Self.hex(lead)) never occurs in UTF-8")
        }
        for k in 1...count {
            guard start + k < bytes.count else { throw fail("invalid UTF-8: truncated sequence at the end of input", at: start) }
            let b = bytes[start + k]
            let range: ClosedRange<UInt8> = k == 1 ? secondRange : 0x80...0xBF
            guard range.contains(b) else {
                if k == 1, (0x80...0xBF).contains(b) {
                    throw fail("invalid UTF-8: \(secondProblem) (bytes \(Self.hex(lead)) \(Self.hex(b)))", at: start)
                }
                throw fail("invalid UTF-8: truncated sequence (byte 0x\(Self.hex(b)) after lead byte 0x\(Self.hex(lead)))",
                           at: start)
            }
        }
        i = start + count + 1
    }
}
