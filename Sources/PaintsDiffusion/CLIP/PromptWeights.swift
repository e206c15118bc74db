// PaintsDiffusion/CLIP/PromptWeights: A1111-style emphasis in prompts, and prompts longer than one CLIP window.
import Foundation
import PaintsTensor

/// A prompt split into runs of text with an attention weight each, following the syntax A1111's web UI documents:
/// `(text)` multiplies by 1.1, `[text]` divides by 1.1, `(text:1.3)` sets 1.3 (multiplied into enclosing groups),
/// `\(` `\)` `\[` `\]` `\\` are literal, unclosed groups close at the end, and `BREAK` starts a new 75-token window.
public struct WeightedPrompt: Sendable, Equatable {
    public enum Piece: Sendable, Equatable {
        case text(String, weight: Double)
        case windowBreak
    }
    public var pieces: [Piece]

    public init(parsing prompt: String) {
        struct Group { var start: Int; var square: Bool }
        var runs: [(text: String, weight: Double)] = []   // weight < 0 marks BREAK
        var groups: [Group] = []
        let chars = Array(prompt)
        var i = 0
        var plain = ""
        func flush() {
            guard !plain.isEmpty else { return }
            // BREAK, as a whole word, splits the text.
            let parts = plain.components(separatedBy: try! NSRegularExpression(pattern: #"\s*\bBREAK\b\s*"#))
            for (k, part) in parts.enumerated() {
                if k > 0 { runs.append(("", -1)) }
                if !part.isEmpty { runs.append((part, 1)) }
            }
            plain = ""
        }
        func scale(from start: Int, by factor: Double) {
            for r in start..<runs.count where runs[r].weight >= 0 { runs[r].weight *= factor }
        }
        while i < chars.count {
            let c = chars[i]
            if c == "\\", i + 1 < chars.count, "()[]\\".contains(chars[i + 1]) {
                plain.append(chars[i + 1])
                i += 2
                continue
            }
            switch c {
            case "(", "[":
                flush()
                groups.append(Group(start: runs.count, square: c == "["))
            case ")" where groups.last?.square == false, "]" where groups.last?.square == true:
                flush()
                let g = groups.removeLast()
                scale(from: g.start, by: g.square ? 1 / 1.1 : 1.1)
            case ":" where groups.last?.square == false:
                // (text:weight) — a number then ")" ends the group with that weight.
                var j = i + 1
                while j < chars.count, chars[j] == " " { j += 1 }
                var number = ""
                while j < chars.count, "+-.0123456789".contains(chars[j]) { number.append(chars[j]); j += 1 }
                while j < chars.count, chars[j] == " " { j += 1 }
                if let weight = Double(number), j < chars.count, chars[j] == ")" {
                    flush()
                    let g = groups.removeLast()
                    scale(from: g.start, by: weight)
                    i = j + 1
                    continue
                }
                plain.append(c)
            default:
                plain.append(c)
            }
            i += 1
        }
        flush()
        for g in groups.reversed() { scale(from: g.start, by: g.square ? 1 / 1.1 : 1.1) }
        // Merge neighbours of equal weight.
        var merged: [Piece] = []
        for run in runs {
            if run.weight < 0 { merged.append(.windowBreak); continue }
            if case .text(let t, let w)? = merged.last, w == run.weight {
                merged[merged.count - 1] = .text(t + run.text, weight: w)
            } else {
                merged.append(.text(run.text, weight: run.weight))
            }
        }
        pieces = merged
    }
}

extension String {
    fileprivate func components(separatedBy regex: NSRegularExpression) -> [String] {
        var parts: [String] = []
        var last = startIndex
        for m in regex.matches(in: self, range: NSRange(startIndex..., in: self)) {
            guard let r = Range(m.range, in: self) else { continue }
            parts.append(String(self[last..<r.lowerBound]))
            last = r.upperBound
        }
        parts.append(String(self[last...]))
        return parts
    }
}

/// Turns prompts into the UNet's text context: weighted tokens in 75-token windows, each encoded by CLIP, scaled by
/// its weights with the mean restored (as A1111 does), and the windows concatenated.
public struct PromptEncoder: Sendable {
    public let tokenizer: CLIPTokenizer
    public let textModel: CLIPTextModel
    public var clipSkip: Int

    public init(tokenizer: CLIPTokenizer, textModel: CLIPTextModel, clipSkip: Int = 0) {
        self.tokenizer = tokenizer
        self.textModel = textModel
        self.clipSkip = clipSkip
    }

    /// Token windows (75 ids each at most, with their weights) of a prompt.
    public func windows(_ prompt: String) -> [[(id: Int, weight: Float)]] {
        var windows: [[(Int, Float)]] = [[]]
        for piece in WeightedPrompt(parsing: prompt).pieces {
            switch piece {
            case .windowBreak:
                windows.append([])
            case .text(let text, let weight):
                for id in tokenizer.tokens(text) {
                    if windows[windows.count - 1].count == tokenizer.maxLength - 2 { windows.append([]) }
                    windows[windows.count - 1].append((id, Float(weight)))
                }
            }
        }
        return windows
    }

    /// The context [1, 77 * windows, D] of `prompt`, padded with empty windows to at least `minimumWindows`.
    public func encode(_ prompt: String, minimumWindows: Int = 1) throws(ModelError) -> Tensor {
        var chunks = windows(prompt)
        while chunks.count < minimumWindows { chunks.append([]) }
        var parts: [Tensor] = []
        for chunk in chunks {
            let ids = tokenizer.window(chunk.map(\.id))
            let weights = [Float(1)] + chunk.map(\.weight) + Array(repeating: 1, count: tokenizer.maxLength - 1 - chunk.count)
            var z = try textModel.encode([ids], clipSkip: clipSkip)          // [1, 77, D]
            if weights.contains(where: { $0 != 1 }) {
                let d = z.shape[2]
                let before = z.data.reduce(0, +) / Float(z.count)
                for t in 0..<tokenizer.maxLength { for i in 0..<d { z.data[t * d + i] *= weights[t] } }
                let after = z.data.reduce(0, +) / Float(z.count)
                if after != 0 { z = z.map { $0 * (before / after) } }
            }
            parts.append(z)
        }
        let d = parts[0].shape[2]
        return Tensor(shape: [1, tokenizer.maxLength * parts.count, d], data: parts.flatMap(\.data))
    }

    /// Windows a prompt needs (so a negative prompt can be padded to match a positive one).
    public func windowCount(_ prompt: String) -> Int { windows(prompt).count }
}
