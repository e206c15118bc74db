// The WD v3 taggers against timm (fixtures from Tests/Fixtures/tagger/generate.py), and tag formatting on the
// hand-written label file.
import Foundation
import PaintsDiffusion
import PaintsTagger
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct WDTaggerTests {
    let base = Repository.path("Tests/Fixtures/tagger")

    @Test(arguments: ["vit", "convnext"])
    func networkMatchesTimm(_ name: String) throws {
        let tagger = try WDTagger(folder: base + "/" + name)
        let io = try SafeTensorsFile(path: base + "/\(name)-io.safetensors")
        let input = try io.tensor("input")
        let side = input.shape[2]
        #expect(tagger.input.size == side)
        let plane = 3 * side * side
        var probabilities: [Float] = [], logits: [Float] = []
        for b in 0..<input.shape[0] {
            let one = Tensor(shape: [1, 3, side, side], data: Array(input.data[(b * plane)..<((b + 1) * plane)]))
            logits += try tagger.network.logits(one).data
            probabilities += try tagger.probabilities(one)
        }
        let error = relativeError(logits, try io.floats("logits"))
        print("tagger \(name): logits relative error \(error)")
        #expect(error <= 1e-4)
        #expect(relativeError(probabilities, try io.floats("probabilities")) <= 1e-4)
    }

    @Test func inputIsBGRScaledToPlusMinusOne() throws {
        let tagger = try WDTagger(folder: base + "/vit")
        // One red pixel and one white pixel of a 2x1 strip: red lands in the last (R of BGR) plane.
        let t = tagger.inputTensor(rgb: [255, 0, 0, 255, 255, 255, 0, 0, 0, 0, 0, 0], side: 2)
        #expect(t.shape == [1, 3, 2, 2])
        #expect(t.data[0] == -1 && t.data[4] == -1 && t.data[8] == 1)     // pixel 0: B, G = -1, R = 1
        #expect(t.data[1] == 1 && t.data[5] == 1 && t.data[9] == 1)       // pixel 1: white
    }

    @Test func headMustFitTheLabels() throws {
        let directory = try TemporaryDirectory.make(prefix: "tagger")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: base + "/vit/" + file, toPath: directory + "/" + file)
        }
        try "tag_id,name,category,count\n1,solo,0,5\n".write(toFile: directory + "/selected_tags.csv", atomically: true, encoding: .utf8)
        #expect(throws: ModelError.self) { try WDTagger(folder: directory) }
    }

    @Test func tagsFollowTheReferenceFormat() throws {
        let labels = try TagLabels(path: base + "/selected_tags.csv")
        #expect(labels.names.count == 15)
        // ratings, then general: 1girl solo long_hair ^_^ watercolor_(medium) :d looking_at_viewer cowboy_shot,
        // then characters: hatsune_miku kirisame_marisa hakurei_reimu.
        let p: [Float] = [0.9, 0.1, 0.0, 0.0,
                          0.99, 0.35, 0.36, 0.5, 0.8, 0.2, 0.7, 0.3,
                          0.86, 0.85, 0.99]
        let tags = labels.tags(p)
        #expect(tags.map(\.name) == ["hatsune_miku", "hakurei_reimu", "1girl", "long_hair", "^_^", "watercolor_(medium)", "looking_at_viewer"])
        #expect(TagLabels.prompt(tags) == "hatsune miku, hakurei reimu, 1girl, long hair, ^ ^, watercolor \\(medium\\), looking at viewer")
        // Thresholds are strict (> 0.35 and > 0.85) and adjustable; exclusions compare raw names, lowercased.
        let fewer = labels.tags(p, thresholds: .init(general: 0.75, character: 0.9), excluding: ["1girl"])
        #expect(fewer.map(\.name) == ["hakurei_reimu", "watercolor_(medium)"])
        #expect(labels.ratings(p).map(\.name) == ["general", "sensitive", "questionable", "explicit"])
    }
}
