// PaintsDiffusion/CLIP/CLIPTokenizer: CLIP's byte-level BPE tokenizer from vocab.json + merges.txt.
// Matches: transformers CLIPTokenizer (tokenizers backend): NFC, whitespace runs to one space, lowercase, CLIP's split
// pattern, byte-to-unicode mapping, BPE with "</w>" word ends, <|startoftext|> ... <|endoftext|>, padding to 77.
import Foundation
import PaintsTensor

public struct CLIPTokenizer: Sendable {
    public let vocabulary: [String: Int]
    let ranks: [Pair: Int]
    public let startToken: Int
    public let endToken: Int
    /// The padding id: <|endoftext|> for SD1.x, "!" (0) for SD2.x's OpenCLIP tokenizer.
    public let padToken: Int
    /// Texts that are special tokens of their own wherever they appear (the reference splits them out before BPE, so
    /// with SD2's pad token "!" every "!" is token 0, and "!!!" is three of them).
    let specialTokens: [(text: String, id: Int)]
    /// Token windows are this long, start and end tokens included.
    public let maxLength = 77

    struct Pair: Hashable, Sendable {
        let a: String, b: String
    }

    /// - Parameter padToken: the token text padding uses (tokenizer_config.json's `pad_token`).
    public init(vocabulary: [String: Int], merges: [(String, String)], padToken: String = "<|endoftext|>") throws(ModelError) {
        self.vocabulary = vocabulary
        var ranks: [Pair: Int] = [:]
        for (i, m) in merges.enumerated() where ranks[Pair(a: m.0, b: m.1)] == nil { ranks[Pair(a: m.0, b: m.1)] = i }
        self.ranks = ranks
        guard let start = vocabulary["<|startoftext|>"], let end = vocabulary["<|endoftext|>"] else {
            throw .configuration("the vocabulary has no <|startoftext|> / <|endoftext|>")
        }
        // An empty special token would match everywhere and never consume the text.
        guard !padToken.isEmpty, let pad = vocabulary[padToken] else { throw .configuration("pad token \(padToken) is not in the vocabulary") }
        startToken = start
        endToken = end
        self.padToken = pad
        specialTokens = [("<|startoftext|>", start), ("<|endoftext|>", end)] + (pad == end ? [] : [(padToken, pad)])
    }

    /// Reads a transformers `tokenizer` folder: vocab.json, merges.txt and, when present, the pad token of
    /// special_tokens_map.json or tokenizer_config.json (`padToken` overrides it: SD2 single files pad with "!").
    public init(folder: String, padToken: String? = nil) throws(ModelError) {
        // Read only as regular files of at most 16 MiB (a named pipe would block, a device never end).
        guard let vocab = RegularFile.jsonObject(folder + "/vocab.json") as? [String: Int]
        else { throw .configuration("\(folder)/vocab.json: missing, not a regular file of at most 16 MiB, or not a JSON object of ids") }
        guard let mergesText = RegularFile.text(folder + "/merges.txt") else {
            throw .configuration("\(folder)/merges.txt is missing, not a regular UTF-8 file or over 16 MiB")
        }
        let merges = mergesText.split(separator: "\n").filter { !$0.hasPrefix("#version") }.compactMap { line -> (String, String)? in
            let parts = line.split(separator: " ")
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }
        var pad = "<|endoftext|>"
        for name in ["special_tokens_map.json", "tokenizer_config.json"] {
            if let json = RegularFile.jsonObject(folder + "/" + name) {
                if let p = json["pad_token"] as? String { pad = p; break }
                if let p = (json["pad_token"] as? [String: Any])?["content"] as? String { pad = p; break }
            }
        }
        try self.init(vocabulary: vocab, merges: merges, padToken: padToken ?? pad)
    }

    /// CLIP's pre-tokenization pattern (case-insensitive, as the tokenizer lowercases first).
    static let pattern = try! NSRegularExpression(
        pattern: #"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"#,
        options: [.caseInsensitive])

    /// GPT-2's reversible byte -> printable character map.
    static let byteEncoder: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    /// Normalization before splitting: NFC, whitespace runs to one space, lowercase.
    static func normalize(_ text: String) -> String {
        let composed = text.precomposedStringWithCanonicalMapping
        return composed.replacingOccurrences(of: #"\s+"#, with: " ", options: .regularExpression).lowercased()
    }

    /// Token ids of `text`, without start, end or padding.
    public func tokens(_ text: String) -> [Int] {
        var ids: [Int] = []
        var rest = Substring(Self.normalize(text))
        while !rest.isEmpty {
            // The earliest special token splits the text; the part before it goes through BPE.
            let next = specialTokens.compactMap { s in rest.range(of: s.text).map { ($0, s.id) } }.min { $0.0.lowerBound < $1.0.lowerBound }
            let plainEnd = next?.0.lowerBound ?? rest.endIndex
            ids += bytePairTokens(String(rest[..<plainEnd]))
            guard let (range, id) = next else { break }
            ids.append(id)
            rest = rest[range.upperBound...]
        }
        return ids
    }

    private func bytePairTokens(_ text: String) -> [Int] {
        var ids: [Int] = []
        for match in Self.pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            guard let r = Range(match.range, in: text) else { continue }
            let mapped = text[r].utf8.map { String(Self.byteEncoder[Int($0)]) }
            for piece in bpe(mapped) { ids.append(vocabulary[piece] ?? endToken) }
        }
        return ids
    }

    /// Byte-pair merges of one word (symbols already byte-mapped); the last symbol carries "</w>".
    func bpe(_ symbols: [String]) -> [String] {
        guard !symbols.isEmpty else { return [] }
        var word = symbols
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, index: Int)?
            for i in 0..<(word.count - 1) {
                if let rank = ranks[Pair(a: word[i], b: word[i + 1])], rank < (best?.rank ?? .max) { best = (rank, i) }
            }
            guard let best else { break }
            let (a, b) = (word[best.index], word[best.index + 1])
            var merged: [String] = []
            var i = 0
            while i < word.count {
                if i < word.count - 1 && word[i] == a && word[i + 1] == b {
                    merged.append(a + b)
                    i += 2
                } else {
                    merged.append(word[i])
                    i += 1
                }
            }
            word = merged
        }
        return word
    }

    /// One 77-token window: start, up to 75 tokens (the rest cut off), end, padding.
    public func encode(_ text: String) -> [Int] {
        window(Array(tokens(text).prefix(maxLength - 2)))
    }

    /// Wraps up to 75 ids in start and end tokens and pads to 77.
    public func window(_ ids: [Int]) -> [Int] {
        let body = [startToken] + ids.prefix(maxLength - 2) + [endToken]
        return body + Array(repeating: padToken, count: maxLength - body.count)
    }
}
