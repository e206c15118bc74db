// PaintsTestSupport/JSONSchemaValidator: validates JSON values against the subset of JSON Schema that Protocol/ uses.
import Foundation
import PaintsProtocol

/// Supports: type, enum, const, properties, required, additionalProperties, items, minItems, maxItems, minLength,
/// minimum, maximum, exclusiveMinimum, pattern, allOf, anyOf, oneOf, not, if/then/else, and $ref to "#/..." or
/// "other.json#/..." resolved against the schema directory. Unknown keywords (title, description, $id) are ignored.
public struct JSONSchemaValidator {
    let directory: String
    private var cache: [String: JSONValue] = [:]

    public init(directory: String) { self.directory = directory }

    public mutating func load(_ file: String) throws -> JSONValue {
        if let s = cache[file] { return s }
        let s = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: directory + "/" + file)))
        cache[file] = s
        return s
    }

    /// Problems found validating `value` against schema `file`; empty when valid.
    public mutating func validate(_ value: JSONValue, against file: String) throws -> [String] {
        let schema = try load(file)
        var errors: [String] = []
        try check(value, schema, file: file, path: "$", errors: &errors)
        return errors
    }

    private mutating func resolve(_ ref: String, from file: String) throws -> (JSONValue, String) {
        let parts = ref.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let target = parts[0].isEmpty ? file : Self.join((file as NSString).deletingLastPathComponent, parts[0])
        var node = try load(target)
        if parts.count > 1 {
            for key in parts[1].split(separator: "/") where !key.isEmpty {
                guard let next = node[String(key)] else { throw SchemaError.badReference(ref) }
                node = next
            }
        }
        return (node, target)
    }

    enum SchemaError: Error { case badReference(String) }

    /// `base/relative` with "." and ".." segments folded.
    static func join(_ base: String, _ relative: String) -> String {
        var parts: [Substring] = []
        for segment in (base.isEmpty ? relative : base + "/" + relative).split(separator: "/") {
            if segment == ".." { _ = parts.popLast() } else if segment != "." { parts.append(segment) }
        }
        return parts.joined(separator: "/")
    }

    private mutating func check(_ value: JSONValue, _ schema: JSONValue, file: String, path: String, errors: inout [String]) throws {
        if case .bool(let b) = schema {
            if !b { errors.append("\(path): not allowed") }
            return
        }
        if let ref = schema["$ref"]?.stringValue {
            let (target, targetFile) = try resolve(ref, from: file)
            try check(value, target, file: targetFile, path: path, errors: &errors)
        }
        if let type = schema["type"] {
            let allowed = type.arrayValue?.compactMap(\.stringValue) ?? [type.stringValue ?? ""]
            let actual = value.typeName
            let ok = allowed.contains(actual) || (actual == "integer" && allowed.contains("number"))
            if !ok {
                errors.append("\(path): expected \(allowed.joined(separator: "|")), got \(actual)")
                return
            }
        }
        if let options = schema["enum"]?.arrayValue, !options.contains(value) {
            errors.append("\(path): \(value.serializedString()) not in enum")
        }
        if let c = schema["const"], c != value { errors.append("\(path): expected \(c.serializedString())") }
        if let x = value.doubleValue {
            if let min = schema["minimum"]?.doubleValue, x < min { errors.append("\(path): \(x) < minimum \(min)") }
            if let max = schema["maximum"]?.doubleValue, x > max { errors.append("\(path): \(x) > maximum \(max)") }
            if let min = schema["exclusiveMinimum"]?.doubleValue, x <= min { errors.append("\(path): \(x) <= \(min)") }
        }
        if let s = value.stringValue {
            if let min = schema["minLength"]?.intValue, s.count < min { errors.append("\(path): shorter than \(min)") }
            if let pattern = schema["pattern"]?.stringValue, s.range(of: pattern, options: .regularExpression) == nil {
                errors.append("\(path): does not match \(pattern)")
            }
        }
        if let items = value.arrayValue {
            if let min = schema["minItems"]?.intValue, items.count < min { errors.append("\(path): fewer than \(min) items") }
            if let max = schema["maxItems"]?.intValue, items.count > max { errors.append("\(path): more than \(max) items") }
            if let itemSchema = schema["items"] {
                for (i, item) in items.enumerated() {
                    try check(item, itemSchema, file: file, path: "\(path)[\(i)]", errors: &errors)
                }
            }
        }
        if let members = value.objectValue {
            for key in schema["required"]?.arrayValue?.compactMap(\.stringValue) ?? [] where members[key] == nil {
                errors.append("\(path): missing required \"\(key)\"")
            }
            let properties = schema["properties"]?.objectValue ?? [:]
            for (key, member) in members {
                if let p = properties[key] {
                    try check(member, p, file: file, path: "\(path).\(key)", errors: &errors)
                } else if let extra = schema["additionalProperties"] {
                    try check(member, extra, file: file, path: "\(path).\(key)", errors: &errors)
                }
            }
        }
        for sub in schema["allOf"]?.arrayValue ?? [] { try check(value, sub, file: file, path: path, errors: &errors) }
        if let any = schema["anyOf"]?.arrayValue {
            var matched = false
            for sub in any where try isValid(value, sub, file: file) { matched = true }
            if !matched { errors.append("\(path): matches none of anyOf") }
        }
        if let one = schema["oneOf"]?.arrayValue {
            var count = 0
            for sub in one where try isValid(value, sub, file: file) { count += 1 }
            if count != 1 { errors.append("\(path): matches \(count) of oneOf, expected exactly 1") }
        }
        if let not = schema["not"], try isValid(value, not, file: file) { errors.append("\(path): matches \"not\"") }
        if let condition = schema["if"] {
            if try isValid(value, condition, file: file) {
                if let then = schema["then"] { try check(value, then, file: file, path: path, errors: &errors) }
            } else if let otherwise = schema["else"] {
                try check(value, otherwise, file: file, path: path, errors: &errors)
            }
        }
    }

    private mutating func isValid(_ value: JSONValue, _ schema: JSONValue, file: String) throws -> Bool {
        var errors: [String] = []
        try check(value, schema, file: file, path: "$", errors: &errors)
        return errors.isEmpty
    }
}
