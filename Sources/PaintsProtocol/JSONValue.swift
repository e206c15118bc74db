// PaintsProtocol/JSONValue: a JSON document as a Sendable value, with a strict parser and a compact serializer.
import Foundation

/// A JSON value. Numbers are kept as `Double` (integers are exact up to 2^53, which bounds every integer the protocol uses).
public enum JSONValue: Sendable, Equatable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Deepest nesting of arrays and objects that `parse` accepts.
    public static let maxNestingDepth = JSONParser.maxDepth

    /// Parses UTF-8 JSON text strictly (RFC 8259, see `JSONParser`: no trailing commas, no duplicate keys, valid UTF-8
    /// only, numbers within `Double`'s range, at most `maxNestingDepth` levels); throws `ProtocolError(.parseError)`
    /// saying what is wrong and at which byte (also in `details.offset`).
    public static func parse(_ data: Data) throws(ProtocolError) -> JSONValue {
        let outcome = data.withUnsafeBytes { raw in
            Result { () throws(JSONParseFailure) -> JSONValue in try JSONParser.parse(raw.assumingMemoryBound(to: UInt8.self)) }
        }
        switch outcome {
        case .success(let value): return value
        case .failure(let failure):
            throw ProtocolError(.parseError, "frame 0 is not valid JSON: \(failure.what) at byte \(failure.offset)",
                                details: ["offset": .number(Double(failure.offset))])
        }
    }

    /// Compact serialization (object keys sorted, so output is stable and testable).
    public func serialized() -> Data { Data(serializedString().utf8) }

    public func serializedString() -> String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let x):
            if !x.isFinite {
                out += "null"
            } else if x == x.rounded(), abs(x) < 9.007_199_254_740_992e15 {
                out += String(Int64(x))
            } else {
                out += "\(x)"
            }
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, key) in members.keys.sorted().enumerated() {
                if i > 0 { out += "," }
                Self.writeString(key, into: &out)
                out += ":"
                members[key]!.write(into: &out)
            }
            out += "}"
        }
    }

    private static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(format: "%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    // MARK: accessors

    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var doubleValue: Double? { if case .number(let x) = self { return x } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The value as an integer, when it is a number with no fractional part.
    public var intValue: Int? {
        guard case .number(let x) = self, x.isFinite, x == x.rounded(), abs(x) < 9.007_199_254_740_992e15 else { return nil }
        return Int(x)
    }

    /// The JSON type name, as JSON Schema spells it, for error messages.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: intValue != nil ? "integer" : "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

extension JSONValue: ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral, ExpressibleByStringLiteral,
    ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral, ExpressibleByNilLiteral
{
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue {
    public init(_ value: Int) { self = .number(Double(value)) }
    public init(_ value: Double) { self = .number(value) }
    public init(_ value: String) { self = .string(value) }
    public init(_ value: Bool) { self = .bool(value) }
    public init(_ values: [String: JSONValue]) { self = .object(values) }
    public init(_ values: [JSONValue]) { self = .array(values) }
    /// `nil` becomes JSON null.
    public init(optional value: Double?) { self = value.map(JSONValue.number) ?? .null }
}
