// paints-fuzz/Mutators: seeded mutations of bytes, JSON documents, safetensors headers and PNG chunks. Every choice
// comes from the generator passed in, so an input is a function of (seed, target, iteration) alone.
import Foundation
import PaintsTensor

extension SplitMix64 {
    /// A uniform integer in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / 9_007_199_254_740_992.0 < p }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Byte-level mutations (AFL's havoc, in small).
enum ByteMutator {
    static let interestingBytes: [UInt8] = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x2c, 0x5b, 0x5d, 0x7b, 0x7d, 0x30, 0x39, 0x2d, 0x2e]
    static let interestingWords: [UInt64] = [0, 1, 2, 7, 8, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff,
                                             1 << 32, 0x7fff_ffff_ffff_ffff, 0x8000_0000_0000_0000, .max]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64, rounds: Int? = nil) -> [UInt8] {
        var b = input
        for _ in 0..<(rounds ?? 1 + rng.below(4)) {
            switch rng.below(9) {
            case 0 where !b.isEmpty:  // flip a bit
                let i = rng.below(b.count)
                b[i] ^= 1 << UInt8(rng.below(8))
            case 1 where !b.isEmpty:  // a random byte
                b[rng.below(b.count)] = UInt8(truncatingIfNeeded: rng.next())
            case 2 where !b.isEmpty:  // an interesting byte
                b[rng.below(b.count)] = rng.pick(interestingBytes)
            case 3 where b.count >= 8:  // an interesting word, either byte order, 2/4/8 bytes
                let width = rng.pick([2, 4, 8]), at = rng.below(b.count - width + 1)
                var v = rng.pick(interestingWords)
                if rng.chance(0.5) { v = v.byteSwapped >> UInt64(64 - 8 * width) }
                for k in 0..<width { b[at + k] = UInt8(truncatingIfNeeded: v >> UInt64(8 * k)) }
            case 4 where !b.isEmpty:  // delete a run
                let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(16))
                b.removeSubrange(at..<(at + n))
            case 5:  // insert random or repeated bytes
                let at = rng.below(b.count + 1), n = 1 + rng.below(16)
                let fill = rng.chance(0.5) ? [UInt8](repeating: rng.pick(interestingBytes), count: n)
                    : (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                b.insert(contentsOf: fill, at: at)
            case 6 where b.count >= 2:  // duplicate a chunk elsewhere
                let from = rng.below(b.count), n = min(b.count - from, 1 + rng.below(64))
                let chunk = Array(b[from..<(from + n)])
                b.insert(contentsOf: chunk, at: rng.below(b.count + 1))
            case 7 where !b.isEmpty:  // truncate
                b.removeLast(1 + rng.below(max(1, min(b.count, b.count / 4 + 1))))
            default:  // overwrite a run with one value
                guard !b.isEmpty else { break }
                let at = rng.below(b.count), n = min(b.count - at, 1 + rng.below(8)), v = rng.pick(interestingBytes)
                for k in at..<(at + n) { b[k] = v }
            }
        }
        return b
    }
}

/// Mutations of parsed JSON (JSONSerialization's objects): one value somewhere replaced, removed or added.
enum JSONMutator {
    nonisolated(unsafe) static let numbers: [Any] = [0, -1, 1, 2, 3, 4, 7, 8, 64, 65536, 1 << 31, Int64.max, Int64.min, 0.5, -0.5, 1e300, -1e300, 1e-300,
                                 1e19, 123456789012]
    nonisolated(unsafe) static let strings: [Any] = ["", "F32", "F16", "BF16", "F64", "I64", "I32", "U8", "BOOL", "X", "gelu", "quick_gelu", "linear",
                                 "leading", "trailing", "v_prediction", "CrossAttnDownBlock2D", "UpBlock2D", "vit_", "convnext", "!",
                                 "<|endoftext|>", "weight", "\u{0}", "é"]

    static func randomValue(_ rng: inout SplitMix64, depth: Int = 0) -> Any {
        switch rng.below(depth > 1 ? 4 : 6) {
        case 0: return rng.pick(numbers)
        case 1: return rng.pick(strings)
        case 2: return NSNull()
        case 3: return rng.chance(0.5)
        case 4: return (0..<rng.below(4)).map { _ in randomValue(&rng, depth: depth + 1) }
        default: return ["k\(rng.below(4))": randomValue(&rng, depth: depth + 1)]
        }
    }

    /// Paths to every value, in a fixed order (dictionary keys sorted).
    static func paths(_ value: Any, _ prefix: [AnyHashable] = [], into out: inout [[AnyHashable]], limit: Int = 20_000) {
        guard out.count < limit else { return }
        out.append(prefix)
        if let o = value as? [String: Any] {
            for k in o.keys.sorted() { paths(o[k]!, prefix + [k], into: &out, limit: limit) }
        } else if let a = value as? [Any] {
            for (i, v) in a.enumerated() { paths(v, prefix + [i], into: &out, limit: limit) }
        }
    }

    static func get(_ value: Any, _ path: ArraySlice<AnyHashable>) -> Any? {
        guard let head = path.first else { return value }
        if let k = head as? String, let o = value as? [String: Any], let v = o[k] { return get(v, path.dropFirst()) }
        if let i = head as? Int, let a = value as? [Any], a.indices.contains(i) { return get(a[i], path.dropFirst()) }
        return nil
    }

    /// `value` with the element at `path` replaced by `f(old)` (nil removes it).
    static func update(_ value: Any, _ path: ArraySlice<AnyHashable>, _ f: (Any) -> Any?) -> Any? {
        guard let head = path.first else { return f(value) }
        if let k = head as? String, var o = value as? [String: Any], let v = o[k] {
            o[k] = update(v, path.dropFirst(), f)
            return o
        }
        if let i = head as? Int, var a = value as? [Any], a.indices.contains(i) {
            if let new = update(a[i], path.dropFirst(), f) { a[i] = new } else { a.remove(at: i) }
            return a
        }
        return value
    }

    /// JSON text of `value`, keys sorted; nil when it cannot be written (JSONSerialization traps on a top-level
    /// value that is not an array or object, so that is checked first).
    static func serialized(_ value: Any) -> Data? {
        guard JSONSerialization.isValidJSONObject(value) else { return nil }
        return try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])
    }

    static func mutate(_ root: Any, _ rng: inout SplitMix64) -> Any {
        var all: [[AnyHashable]] = []
        paths(root, into: &all)
        let path = rng.pick(all)
        let result = update(root, path[...]) { old in
            switch rng.below(8) {
            case 0 where !path.isEmpty: return nil                      // remove
            case 1:
                if let n = old as? NSNumber, !(old is Bool) {               // a nearby or interesting number
                    let d = n.doubleValue
                    return rng.pick([d + 1, d - 1, d * 2, -d, d / 2, 0] as [Any])
                }
                return randomValue(&rng)
            case 2:
                if var a = old as? [Any], !a.isEmpty {                      // shorten, lengthen or reorder a list
                    switch rng.below(3) {
                    case 0: a.removeLast()
                    case 1: a.append(a[rng.below(a.count)])
                    default: a.swapAt(rng.below(a.count), rng.below(a.count))
                    }
                    return a
                }
                return randomValue(&rng)
            case 3:
                if var o = old as? [String: Any] {                         // add a member
                    o[rng.pick(["dtype", "shape", "data_offsets", "__metadata__", "x", "block_out_channels", "layers_per_block",
                                "hidden_size", "num_attention_heads", "sample_size", "architecture"])] = randomValue(&rng)
                    return o
                }
                return randomValue(&rng)
            default: return randomValue(&rng)
            }
        }
        return result ?? root
    }
}

/// A safetensors file split into its header (parsed) and its data section (kept as is).
struct SafeTensorsImage {
    var header: [String: Any]
    var data: Data

    init?(_ bytes: Data) {
        guard bytes.count >= 8 else { return nil }
        let n = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
        guard n <= UInt64(bytes.count - 8),
              let json = (try? JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + Int(n))))) as? [String: Any]
        else { return nil }
        header = json
        data = bytes.subdata(in: (8 + Int(n))..<bytes.count)
    }

    func encoded() -> Data? {
        guard var json = JSONMutator.serialized(header) else { return nil }
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }

    /// `self` as a patch of `seed` when both have the same data section: the seed's path and the header entries
    /// set or removed (a few hundred bytes where the whole file is megabytes). `SafeTensorsPatch.apply` rebuilds it.
    func patch(of seed: SafeTensorsImage, source: String) -> Data? {
        guard data == seed.data else { return nil }
        var set: [String: Any] = [:], remove: [String] = []
        for key in Set(header.keys).union(seed.header.keys).sorted() {
            switch (header[key], seed.header[key]) {
            case (nil, _?): remove.append(key)
            case (let mine?, let theirs):
                if theirs == nil || JSONMutator.serialized([mine]) != JSONMutator.serialized([theirs!]) { set[key] = mine }
            default: break
            }
        }
        return JSONMutator.serialized(["seed": source, "set": set, "remove": remove] as [String: Any])
    }

    var tensorNames: [String] { header.keys.filter { $0 != "__metadata__" }.sorted() }

    static let dtypeSizes = ["F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "BOOL": 1]

    /// A key changed as a hostile or sloppy writer would: cut at a dot, a part dropped or renumbered, a dot added.
    static func mutateKey(_ key: String, others: [String], _ rng: inout SplitMix64) -> String {
        var parts = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch rng.below(7) {
        case 0: return parts.prefix(rng.below(parts.count + 1)).joined(separator: ".") + (rng.chance(0.5) ? "." : "")
        case 1 where parts.count > 1:
            parts.remove(at: rng.below(parts.count))
        case 2:
            let numeric = parts.indices.filter { Int(parts[$0]) != nil }
            let i = numeric.isEmpty ? rng.below(parts.count) : rng.pick(numeric)
            parts[i] = rng.pick(["0", "1", "2", "3", "9", "-1", "-9223372036854775808", "9223372036854775807", "99999999999999999999", "block_0", "block_-9223372036854775808"])
        case 3: parts.insert("", at: rng.below(parts.count + 1))
        case 4 where !others.isEmpty:
            let other = rng.pick(others).split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            parts[rng.below(parts.count)] = rng.pick(other)
        case 5: parts.append(rng.pick(["weight", "bias", "op", "conv", "0", ""]))
        default: parts[rng.below(parts.count)] = rng.pick(["in_layers", "out_layers", "3", "op", "attn2", "to_k", "down", "up", "mid", "block", "attn_1", "q", "conv_in"])
        }
        return parts.joined(separator: ".")
    }

    /// One structural change that keeps the file readable (byte counts and ranges stay consistent) so the loaders
    /// above the reader see it, or, now and then, one that does not.
    mutating func mutate(_ rng: inout SplitMix64) {
        let names = tensorNames
        guard !names.isEmpty else { header = JSONMutator.mutate(header, &rng) as? [String: Any] ?? header; return }
        let name = rng.pick(names)
        guard var entry = header[name] as? [String: Any] else { return }
        let shape = (entry["shape"] as? [Any])?.compactMap { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } } ?? []
        let count = shape.reduce(1, &*)  // the mutator's own arithmetic wraps: shapes may be anything
        let offsets = (entry["data_offsets"] as? [Any])?.compactMap { ($0 as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } } ?? [0, 0]
        let size = Self.dtypeSizes[entry["dtype"] as? String ?? ""] ?? 4
        switch rng.below(12) {
        case 0, 1:  // swap two tensors' names: shapes no longer fit their keys
            let other = rng.pick(names)
            let a = header[name], b = header[other]
            header[name] = b
            header[other] = a
        case 2, 3:  // reshape to the same element count
            var new: [Int]
            switch rng.below(5) {
            case 0: new = [count]
            case 1: new = [1, count]
            case 2: new = shape + [1]
            case 3 where shape.count >= 2:
                let i = rng.below(shape.count - 1)
                new = Array(shape[..<i]) + [shape[i] &* shape[i + 1]] + Array(shape[(i + 2)...])
            default: new = shape.count >= 2 ? Array(shape.reversed()) : [1] + shape
            }
            entry["shape"] = new
            header[name] = entry
        case 4:  // a scalar or an empty tensor in place of this one (a sub-range stays inside its bytes)
            if rng.chance(0.5), offsets.count == 2, offsets[1] &- offsets[0] >= size {
                entry["shape"] = [Int]()
                entry["data_offsets"] = [offsets[0], offsets[0] &+ size]
            } else {
                entry["shape"] = rng.pick([[0], [0, 4], [4, 0], [1, 0, 3, 3], [0, 0, 0, 0]])
                entry["data_offsets"] = [offsets.first ?? 0, offsets.first ?? 0]
            }
            header[name] = entry
        case 5, 6:  // rename
            header[name] = nil
            header[Self.mutateKey(name, others: names, &rng)] = entry
        case 7:  // delete some
            for _ in 0..<(1 + rng.below(3)) { header[rng.pick(names)] = nil }
        case 8:  // delete every key with a random prefix
            let parts = name.split(separator: ".")
            let prefix = parts.prefix(1 + rng.below(parts.count)).joined(separator: ".")
            for n in names where n.hasPrefix(prefix) { header[n] = nil }
        case 9:  // an empty tensor under a new key
            var extra = entry
            extra["shape"] = rng.pick([[0], [3, 0], [0, 8, 3, 3], [1, 0]])
            extra["data_offsets"] = [0, 0]
            header[Self.mutateKey(name, others: names, &rng)] = extra
        case 10:  // another dtype of the same size
            let same = Self.dtypeSizes.filter { $0.value == size }.keys.sorted()
            entry["dtype"] = rng.pick(same)
            header[name] = entry
        default:  // anything at all
            header = JSONMutator.mutate(header, &rng) as? [String: Any] ?? header
        }
    }
}

/// PNG chunks, for mutations that keep the CRCs right (so libpng reads past them).
enum PNGMutator {
    static let signature: [UInt8] = [137, 80, 78, 71, 13, 10, 26, 10]

    struct Chunk {
        var type: [UInt8]
        var data: [UInt8]
    }

    static func chunks(_ b: [UInt8]) -> [Chunk]? {
        guard b.count >= 8, Array(b[0..<8]) == signature else { return nil }
        var out: [Chunk] = [], i = 8
        while i + 12 <= b.count {
            let n = Int(UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3]))
            guard i + 12 + n <= b.count else { return nil }
            out.append(Chunk(type: Array(b[(i + 4)..<(i + 8)]), data: Array(b[(i + 8)..<(i + 8 + n)])))
            i += 12 + n
        }
        return out
    }

    static func assemble(_ chunks: [Chunk]) -> [UInt8] {
        var out = signature
        for c in chunks {
            let n = UInt32(c.data.count)
            out += [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
            out += c.type + c.data
            let crc = crc32(c.type + c.data)
            out += [UInt8(crc >> 24), UInt8((crc >> 16) & 0xff), UInt8((crc >> 8) & 0xff), UInt8(crc & 0xff)]
        }
        return out
    }

    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xffff_ffff
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
        return c ^ 0xffff_ffff
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        guard var cs = chunks(input), !cs.isEmpty, rng.chance(0.8) else { return ByteMutator.mutate(input, &rng) }
        let i = rng.below(cs.count)
        let ihdr = cs.firstIndex { $0.type == Array("IHDR".utf8) && $0.data.count == 13 }
        switch rng.below(7) {
        case 0 where ihdr != nil:
            let h = ihdr!
            switch rng.below(5) {
            case 0, 1:  // width or height
                let v = UInt32(truncatingIfNeeded: rng.pick(ByteMutator.interestingWords + [3, 5, 16, 100, 5000, 70000]))
                let at = rng.chance(0.5) ? 0 : 4
                for k in 0..<4 { cs[h].data[at + k] = UInt8((v >> UInt32(24 - 8 * k)) & 0xff) }
            case 2: cs[h].data[8] = rng.pick([0, 1, 2, 3, 4, 8, 16, 32])          // bit depth
            case 3: cs[h].data[9] = rng.pick([0, 1, 2, 3, 4, 5, 6, 7])            // colour type
            default: cs[h].data[12] = rng.pick([0, 1, 2])                          // interlace
            }
        case 1: cs[i].data = ByteMutator.mutate(cs[i].data, &rng)
        case 2 where cs.count > 1: cs.remove(at: i)
        case 3: cs.insert(cs[i], at: rng.below(cs.count + 1))
        case 4 where cs.count > 1: cs.swapAt(i, rng.below(cs.count))
        case 5:
            let type = rng.pick(["PLTE", "tRNS", "gAMA", "sBIT", "iCCP", "sRGB", "bKGD", "IDAT", "IEND", "cHRM", "sPLT", "hIST"])
            cs.insert(Chunk(type: Array(type.utf8), data: (0..<rng.below(40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
                      at: rng.below(cs.count + 1))
        default:
            if !cs[i].data.isEmpty { cs[i].data.removeLast(1 + rng.below(cs[i].data.count)) }
        }
        return assemble(cs)
    }
}

/// Mutations of JSON text that a parser must refuse or read correctly: nesting, numbers, escapes, commas.
enum JSONTextMutator {
    static let fragments = ["[", "]", "{", "}", ",", ":", "\"", "\\", "\\u0000", "\\ud800", "\\uDFFF", "1e400", "-0", "0e1", "1.",
                            ".5", "01", "true", "nul", "null", "\"\":", ",]", ",}", "\u{0}", "\u{7f}", "\u{feff}", "\"id\":\"a\",",
                            "\"method\":\"shutdown\",", "9999999999999999999999", "-9223372036854775809", "1E+2", "\t", "\n"]

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var b = input
        switch rng.below(6) {
        case 0:  // deep nesting at a random place
            let depth = rng.pick([10, 100, 511, 512, 513, 1000, 5000, 100_000])
            let open = rng.chance(0.5) ? UInt8(ascii: "[") : UInt8(ascii: "{")
            var nest = [UInt8](repeating: open, count: depth)
            if open == UInt8(ascii: "{") { nest = Array(String(repeating: "{\"a\":", count: depth).utf8) }
            if rng.chance(0.5) {
                nest += [UInt8(ascii: "1")] + [UInt8](repeating: open == UInt8(ascii: "[") ? UInt8(ascii: "]") : UInt8(ascii: "}"), count: depth)
            }
            b.insert(contentsOf: nest, at: rng.below(b.count + 1))
        case 1, 2:  // a fragment
            b.insert(contentsOf: Array(rng.pick(fragments).utf8), at: rng.below(b.count + 1))
        case 3:  // invalid UTF-8 or UTF-16
            let bad: [[UInt8]] = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xfe, 0xff, 0, 0x7b]]
            b.insert(contentsOf: rng.pick(bad), at: rng.below(b.count + 1))
        case 4:  // a long string
            let s = [UInt8](repeating: UInt8(ascii: "a"), count: rng.pick([1 << 10, 1 << 16, 1 << 20]))
            b.insert(contentsOf: [UInt8(ascii: "\"")] + s + [UInt8(ascii: "\"")], at: rng.below(b.count + 1))
        default:
            b = ByteMutator.mutate(b, &rng)
        }
        return b
    }
}

/// Saved inputs that are a header change of a large seed: {"seed": path, "set": {key: entry}, "remove": [key]}.
enum SafeTensorsPatch {
    struct Bad: Error, CustomStringConvertible { var description: String }

    /// The whole file the patch describes: the seed's header with the changes, and the seed's data section.
    static func apply(_ patch: Data, root: String) throws -> Data {
        guard let p = try JSONSerialization.jsonObject(with: patch) as? [String: Any], let source = p["seed"] as? String,
              var image = SafeTensorsImage(try Data(contentsOf: URL(fileURLWithPath: root + "/" + source)))
        else { throw Bad(description: "not a patch of a safetensors seed") }
        for key in p["remove"] as? [String] ?? [] { image.header[key] = nil }
        for (key, value) in p["set"] as? [String: Any] ?? [:] { image.header[key] = value }
        guard let out = image.encoded() else { throw Bad(description: "the patched header cannot be written") }
        return out
    }
}
