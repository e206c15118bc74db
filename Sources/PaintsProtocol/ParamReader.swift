// PaintsProtocol/ParamReader: typed reads of a params object, each failure an `invalid_params` error naming the member.

/// Reads members of a params object with precise errors; rejects members it was never asked about.
public struct ParamReader {
    public let values: [String: JSONValue]
    private var seen: Set<String> = []
    /// The prefix used in error messages (e.g. `options.` for nested objects).
    private let path: String

    public init(_ values: [String: JSONValue], path: String = "") {
        self.values = values
        self.path = path
    }

    private func fail(_ key: String, _ expected: String, got: JSONValue?) -> ProtocolError {
        var details: [String: JSONValue] = ["param": .string(path + key), "expected": .string(expected)]
        if let got { details["got"] = .string(got.typeName) }
        let what = got.map { "got \(Self.describe($0))" } ?? "missing"
        return ProtocolError(.invalidParams, "\(path + key): expected \(expected), \(what)", details: details)
    }

    /// A wrong value as the message shows it: the value itself when it is a short scalar (`got 99`, `got "fast"`,
    /// `got true`), else its type (`got array`).
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .number, .bool, .string:
            let text = value.serializedString()
            return text.count <= 40 ? text : value.typeName
        default:
            return value.typeName
        }
    }

    private mutating func take(_ key: String) -> JSONValue? {
        seen.insert(key)
        if let v = values[key], v != .null { return v }
        return nil
    }

    /// A string param, at most `RequestLimits.maxStringBytes(param: key)` UTF-8 bytes long.
    public mutating func string(_ key: String) throws(ProtocolError) -> String? {
        guard let v = take(key) else { return nil }
        guard let s = v.stringValue else { throw fail(key, "a string", got: v) }
        try checkLength(s, key)
        return s
    }

    /// The one place string params are held to their length limit.
    private func checkLength(_ s: String, _ key: String) throws(ProtocolError) {
        let limit = RequestLimits.maxStringBytes(param: key)
        let bytes = s.utf8.count
        guard bytes <= limit else {
            throw ProtocolError(.invalidParams, "\(path + key): expected a string of at most \(limit) bytes, got \(bytes) bytes",
                                details: ["param": .string(path + key), "expected": .string("a string of at most \(limit) bytes"),
                                          "max_bytes": JSONValue(limit), "bytes": JSONValue(bytes)])
        }
    }

    public mutating func requiredString(_ key: String) throws(ProtocolError) -> String {
        guard let s = try string(key) else { throw fail(key, "a string", got: nil) }
        return s
    }

    public mutating func bool(_ key: String) throws(ProtocolError) -> Bool? {
        guard let v = take(key) else { return nil }
        guard let b = v.boolValue else { throw fail(key, "a boolean", got: v) }
        return b
    }

    public mutating func int(_ key: String, in range: ClosedRange<Int>) throws(ProtocolError) -> Int? {
        guard let v = take(key) else { return nil }
        guard let i = v.intValue, range.contains(i) else {
            throw fail(key, "an integer in \(range.lowerBound)...\(range.upperBound)", got: v)
        }
        return i
    }

    public mutating func double(_ key: String, in range: ClosedRange<Double>) throws(ProtocolError) -> Double? {
        guard let v = take(key) else { return nil }
        guard let x = v.doubleValue, range.contains(x) else {
            throw fail(key, "a number in \(range.lowerBound)...\(range.upperBound)", got: v)
        }
        return x
    }

    public mutating func intList(_ key: String, in range: ClosedRange<Int>, maxCount: Int) throws(ProtocolError) -> [Int]? {
        guard let v = take(key) else { return nil }
        let expected = "a list of 1 to \(maxCount) integers in \(range.lowerBound)...\(range.upperBound)"
        guard let items = v.arrayValue, (1...maxCount).contains(items.count) else { throw fail(key, expected, got: v) }
        var out: [Int] = []
        for item in items {
            guard let i = item.intValue, range.contains(i) else { throw fail(key, expected, got: item) }
            out.append(i)
        }
        return out
    }

    public mutating func stringList(_ key: String, maxCount: Int = 1024) throws(ProtocolError) -> [String]? {
        guard let v = take(key) else { return nil }
        let expected = "a list of at most \(maxCount) strings"
        guard let items = v.arrayValue, items.count <= maxCount else { throw fail(key, expected, got: v) }
        var out: [String] = []
        for item in items {
            guard let s = item.stringValue else { throw fail(key, expected, got: item) }
            try checkLength(s, key)
            out.append(s)
        }
        return out
    }

    public mutating func object(_ key: String) throws(ProtocolError) -> [String: JSONValue]? {
        guard let v = take(key) else { return nil }
        guard let o = v.objectValue else { throw fail(key, "an object", got: v) }
        return o
    }

    /// A member as it was sent, for params of more than one form (the caller checks it).
    public mutating func value(_ key: String) -> JSONValue? { take(key) }

    /// A list of at most `maxCount` objects (each read with its own `ParamReader`).
    public mutating func objectList(_ key: String, maxCount: Int) throws(ProtocolError) -> [[String: JSONValue]]? {
        guard let v = take(key) else { return nil }
        let expected = "a list of at most \(maxCount) objects"
        guard let items = v.arrayValue, items.count <= maxCount else { throw fail(key, expected, got: v) }
        var out: [[String: JSONValue]] = []
        for item in items {
            guard let o = item.objectValue else { throw fail(key, expected, got: item) }
            out.append(o)
        }
        return out
    }

    public mutating func image(_ key: String) throws(ProtocolError) -> ImageReference? {
        guard let v = take(key) else { return nil }
        return try ImageReference.parse(v, param: path + key)
    }

    public mutating func requiredImage(_ key: String) throws(ProtocolError) -> ImageReference {
        guard let ref = try image(key) else { throw fail(key, "an image reference", got: nil) }
        return ref
    }

    public mutating func choice<T: RawRepresentable>(_ key: String, as: T.Type) throws(ProtocolError) -> T?
    where T.RawValue == String, T: CaseIterable {
        guard let v = take(key) else { return nil }
        let names = T.allCases.map(\.rawValue).joined(separator: "|")
        guard let s = v.stringValue, let value = T(rawValue: s) else { throw fail(key, "one of \(names)", got: v) }
        return value
    }

    /// Throws when the params hold a member no read asked for (a typo must not be silently ignored).
    public func finish() throws(ProtocolError) {
        if let extra = values.keys.sorted().first(where: { !seen.contains($0) }) {
            throw ProtocolError(.invalidParams, "unknown parameter \"\(path + extra)\"",
                                details: ["param": .string(path + extra), "known": .array(seen.sorted().map { .string($0) })])
        }
    }
}
