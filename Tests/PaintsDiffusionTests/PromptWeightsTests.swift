// A1111 emphasis syntax and long-prompt windows.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct PromptWeightsTests {
    func pieces(_ p: String) -> [WeightedPrompt.Piece] { WeightedPrompt(parsing: p).pieces }

    func approx(_ got: [WeightedPrompt.Piece], _ expected: [(String, Double)]) -> Bool {
        guard got.count == expected.count else { return false }
        for (g, e) in zip(got, expected) {
            guard case .text(let t, let w) = g, t == e.0, abs(w - e.1) < 1e-9 else { return false }
        }
        return true
    }

    @Test func parsesTheDocumentedSyntax() {
        #expect(approx(pieces("a cat"), [("a cat", 1)]))
        #expect(approx(pieces("a (cat)"), [("a ", 1), ("cat", 1.1)]))
        #expect(approx(pieces("a ((cat))"), [("a ", 1), ("cat", 1.21)]))
        #expect(approx(pieces("a [cat]"), [("a ", 1), ("cat", 1 / 1.1)]))
        #expect(approx(pieces("a (cat:1.5) dog"), [("a ", 1), ("cat", 1.5), (" dog", 1)]))
        #expect(approx(pieces("((a (cat:0.5)))"), [("a ", 1.21), ("cat", 0.605)]))
        #expect(approx(pieces(#"a \(cat\) \[x\] \\"#), [(#"a (cat) [x] \"#, 1)]))
        #expect(approx(pieces("a (cat"), [("a ", 1), ("cat", 1.1)]))         // unclosed groups close at the end
        #expect(approx(pieces("ratio 16:9, (x: 2)"), [("ratio 16:9, ", 1), ("x", 2)]))
        #expect(approx(pieces("a ] b"), [("a ] b", 1)]))                       // a stray closer is text
        #expect(pieces("one BREAK two") == [.text("one", weight: 1), .windowBreak, .text("two", weight: 1)])
        #expect(pieces("") == [])
    }

    func encoder() throws -> PromptEncoder {
        let base = Repository.path("Tests/Fixtures/diffusion")
        return PromptEncoder(tokenizer: try CLIPTokenizer(folder: base + "/tokenizer"),
                             textModel: try CLIPTextModel(folder: base + "/clip-sd1"))
    }

    @Test func promptsEncodeThroughTheTokenizerAndTextModel() throws {
        // The fixture text model (clip-sd1) has the fixture tokenizer's vocabulary size.
        let e = try encoder()
        let prompt = "a watercolor painting of a cat"
        let plain = try e.encode(prompt)
        #expect(plain == (try e.textModel.encode([e.tokenizer.encode(prompt)])))
        #expect(try e.encode("a watercolor painting of a (cat:1.0)") == plain)
        let emphasised = try e.encode("a watercolor painting of a (cat:1.5)")
        #expect(emphasised != plain)
        // Weighting keeps the overall mean, as A1111 does.
        let mean = { (t: Tensor) in Double(t.data.reduce(0, +)) / Double(t.count) }
        #expect(abs(mean(emphasised) - mean(plain)) < 1e-5)
        // A negative prompt can be padded to the positive prompt's window count.
        #expect(try e.encode("", minimumWindows: 2).shape == [1, 154, 32])
    }

    @Test func longPromptsBecomeSeveralWindows() throws {
        let e = try encoder()
        let long = Array(repeating: "a b", count: 60).joined(separator: " ")      // 120 tokens
        #expect(e.windowCount(long) == 2)
        #expect(e.windowCount("a BREAK b") == 2)
        #expect(e.windows(long).map(\.count) == [75, 45])
    }
}
