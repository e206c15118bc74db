// The BPE tokenizer against transformers' CLIPTokenizer on prompts with punctuation, non-ASCII text, long prompts.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct CLIPTokenizerTests {
    let folder = Repository.path("Tests/Fixtures/diffusion/tokenizer")

    func prompts() throws -> [String] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/prompts.json"))) as? [String] ?? []
    }

    @Test(arguments: [("<|endoftext|>", "sd1"), ("!", "sd2")])
    func idsMatchTheReference(_ pad: String, _ suffix: String) throws {
        let vocab = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: folder + "/vocab.json"))) as? [String: Int] ?? [:]
        let merges = try String(contentsOfFile: folder + "/merges.txt", encoding: .utf8).split(separator: "\n").dropFirst()
            .map { line -> (String, String) in
                let p = line.split(separator: " ")
                return (String(p[0]), String(p[1]))
            }
        let tokenizer = try CLIPTokenizer(vocabulary: vocab, merges: merges, padToken: pad)
        let expected = try SafeTensorsFile(path: folder + "/expected.safetensors")
        let windows = try expected.integers("ids_\(suffix)")
        let raw = try expected.integers("raw_ids_\(suffix)"), lengths = try expected.integers("raw_lengths_\(suffix)")
        var offset = 0
        for (i, prompt) in try prompts().enumerated() {
            #expect(tokenizer.encode(prompt) == Array(windows[(i * 77)..<((i + 1) * 77)]), "prompt \(i): \(prompt)")
            #expect(tokenizer.tokens(prompt) == Array(raw[offset..<(offset + lengths[i])]), "prompt \(i) unpadded")
            offset += lengths[i]
        }
    }

    @Test func readsATokenizerFolder() throws {
        let tokenizer = try CLIPTokenizer(folder: folder)
        #expect(tokenizer.padToken == tokenizer.endToken)
        #expect(tokenizer.encode("").prefix(2) == [tokenizer.startToken, tokenizer.endToken])
        #expect(throws: ModelError.self) { try CLIPTokenizer(folder: "/nonexistent") }
    }
}
