// CLIP vision encoders and their preprocessing against transformers (Tests/Fixtures/clip-vision/generate.py): tiny
// random models shaped like IP-Adapter's ViT-H/14 (GELU, projection, float16 weights) and SDRO's ViT-L/14 (quick GELU),
// and CLIPImageProcessor against CLIPImageProcessorPil on the example art.
import Foundation
import PaintsDiffusion
import PaintsRaster
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct CLIPVisionParityTests {
    static let fixtures = Repository.path("Tests/Fixtures/clip-vision")

    @Test(arguments: ["vit-h-projection", "vit-l"])
    func matchesTransformers(_ name: String) throws {
        let folder = "\(Self.fixtures)/\(name)"
        let model = try CLIPVisionModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let out = try model(try io.tensor("pixel_values"))
        var errors = ["last_hidden_state": relativeError(out.lastHiddenState, try io.tensor("last_hidden_state")),
                      "penultimate_hidden_state": relativeError(out.penultimateHiddenState, try io.tensor("penultimate_hidden_state")),
                      "pooled": relativeError(out.pooled, try io.tensor("pooled"))]
        if io.entries["image_embeds"] != nil {
            errors["image_embeds"] = out.imageEmbeds.map { relativeError($0, try! io.tensor("image_embeds")) } ?? .infinity
        }
        print("\(name): \(errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        #expect(model.hasProjection == (name == "vit-h-projection"))
        #expect((out.imageEmbeds != nil) == model.hasProjection)
        for (output, error) in errors { #expect(error <= 1e-4, "\(name) \(output): \(error)") }
    }

    /// The comparison sees a wrong input: the batch's two images swapped, and one patch nudged by 0.01.
    @Test func aWrongInputFailsTheComparison() throws {
        let folder = "\(Self.fixtures)/vit-h-projection"
        let model = try CLIPVisionModel(folder: folder)
        let io = try SafeTensorsFile(path: folder + "/io.safetensors")
        let pixels = try io.tensor("pixel_values"), half = pixels.count / 2
        let swapped = Tensor(shape: pixels.shape, data: Array(pixels.data[half...] + pixels.data[..<half]))
        var nudged = pixels
        for y in 0..<8 { for x in 0..<8 { nudged.data[y * 32 + x] += 0.01 } }
        for wrong in [swapped, nudged] {
            let out = try model(wrong)
            let last = relativeError(out.lastHiddenState, try io.tensor("last_hidden_state"))
            let embeds = relativeError(out.imageEmbeds!, try io.tensor("image_embeds"))
            print("wrong input: last_hidden_state \(last), image_embeds \(embeds)")
            #expect(last > 1e-3 && embeds > 1e-4)
        }
    }

    /// A copy of a fixture folder (links to its weights) with config.json changed by `edit`.
    func folder(from name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let source = "\(Self.fixtures)/\(name)", dir = try TemporaryDirectory.make(prefix: "clip-vision")
        for file in try FileManager.default.contentsOfDirectory(atPath: source) where file.hasPrefix("model") {
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/\(file)", withDestinationPath: "\(source)/\(file)")
        }
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/config.json"))) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/config.json"))
        return dir
    }

    @Test func damagedFoldersAndBadInputsAreTypedErrors() throws {
        let edits: [(String, String, (inout [String: Any]) -> Void)] = [
            ("vit-h-projection", "hidden size", { $0["hidden_size"] = 45 }),
            ("vit-h-projection", "heads that do not split the width", { $0["num_attention_heads"] = 3 }),
            ("vit-h-projection", "patch size", { $0["patch_size"] = 4 }),
            ("vit-h-projection", "image size (positions)", { $0["image_size"] = 40 }),
            ("vit-h-projection", "projection width", { $0["projection_dim"] = 16 }),
            ("vit-h-projection", "MLP width", { $0["intermediate_size"] = 128 }),
            ("vit-h-projection", "more layers than stored", { $0["num_hidden_layers"] = 4 }),
            ("vit-h-projection", "an activation CLIP does not use", { $0["hidden_act"] = "relu" }),
            ("vit-h-projection", "a fractional size", { $0["hidden_size"] = 40.5 }),
            ("vit-l", "a projection the weights lack", { $0["architectures"] = ["CLIPVisionModelWithProjection"] }),
        ]
        for (name, what, edit) in edits {
            let dir = try folder(from: name, edit)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            #expect(throws: ModelError.self, "\(what)") { try CLIPVisionModel(folder: dir) }
        }
        // Defaults fill what config.json leaves out, as transformers does: without hidden_act the ViT-L is quick GELU.
        let dir = try folder(from: "vit-l") { $0["hidden_act"] = nil }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try CLIPVisionModel(folder: dir).configuration.activation == .quickGELU)

        let model = try CLIPVisionModel(folder: "\(Self.fixtures)/vit-l")
        for shape in [[1, 3, 32, 32], [1, 4, 28, 28], [0, 3, 28, 28], [3, 28, 28]] {
            #expect(throws: ModelError.self, "\(shape)") { try model(Tensor(zeros: shape)) }
        }
    }

    /// The SDRO fixture's published-layout folders (Tests/Fixtures/sdro): image_encoder/ and clip_image_processor/
    /// (its preprocessor_config.json, shortest edge 32) on reference.png, against what transformers made of them there.
    @Test func readsTheSDROFixtureFolders() throws {
        let model = Repository.path("Tests/Fixtures/sdro/model")
        let io = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/sdro/pipeline-io.safetensors"))
        let processor = try CLIPImageProcessor(folder: model + "/clip_image_processor")
        #expect(processor == CLIPImageProcessor(resize: .shortestEdge(32), cropSize: .init(height: 32, width: 32)))
        let png = try PNGCodec.read(path: Repository.path("Tests/Fixtures/sdro/reference.png"))
        let pixels = try processor.pixelValues(pixels: png.pixels, width: png.width, height: png.height, channels: 4)
        let expectedPixels = try io.tensor("reference_pixel_values")
        let pixelError = zip(pixels.data, expectedPixels.data).map { abs($0 - $1) }.max() ?? .infinity
        let encoder = try CLIPVisionModel(folder: model + "/image_encoder")
        let hidden = relativeError(try encoder(expectedPixels).lastHiddenState, try io.tensor("reference_hidden_states"))
        print("sdro fixture: pixel_values max |error| \(pixelError), last_hidden_state \(hidden)")
        #expect(pixels.shape == expectedPixels.shape && pixelError == 0 && hidden <= 1e-4)
    }

    // MARK: - Preprocessing

    struct PreprocessCase: Decodable {
        var name: String, source: String, cut: [Int]?
        var alpha_ramp: Bool, input_mode: String, input_size: [Int]
        var shortest_edge: Int, crop_height: Int, crop_width: Int, output_size: [Int]
    }

    /// A case's input as the generator built it: the PNG, the cut, the alpha ramp; RGB (3 channels) or RGBA (4).
    static func input(_ c: PreprocessCase) throws -> (pixels: [UInt8], width: Int, height: Int, channels: Int) {
        let png = try PNGCodec.read(path: Repository.path(c.source))
        let (x0, y0, width, height) = c.cut.map { ($0[0], $0[1], $0[2], $0[3]) } ?? (0, 0, png.width, png.height)
        let channels = c.input_mode == "RGBA" ? 4 : 3
        var pixels: [UInt8] = []
        pixels.reserveCapacity(width * height * channels)
        for y in 0..<height {
            for x in 0..<width {
                let p = ((y0 + y) * png.width + x0 + x) * 4
                pixels += png.pixels[p..<(p + 3)]
                if channels == 4 { pixels.append(c.alpha_ramp ? UInt8((7 * x + 3 * y) % 256) : png.pixels[p + 3]) }
            }
        }
        #expect([width, height] == c.input_size)
        return (pixels, width, height, channels)
    }

    static func cases() throws -> [PreprocessCase] {
        try JSONDecoder().decode([PreprocessCase].self, from: Data(contentsOf: URL(fileURLWithPath: fixtures + "/preprocess/cases.json")))
    }

    /// CLIPImageProcessorPil's 8-bit crop (the case's PNG) and its pixel_values (the level table applied to it).
    static func expected(_ c: PreprocessCase, levels: Tensor) throws -> (rgb: [UInt8], pixelValues: [Float]) {
        let png = try PNGCodec.read(path: "\(fixtures)/preprocess/\(c.name).png")
        let rgb = (0..<(png.width * png.height)).flatMap { png.pixels[($0 * 4)..<($0 * 4 + 3)] }
        let plane = png.width * png.height
        let values = (0..<(3 * plane)).map { i in levels.data[(i / plane) * 256 + Int(rgb[(i % plane) * 3 + i / plane])] }
        return (rgb, values)
    }

    /// Bit for bit: the same 8-bit crop and the same float32 pixel_values on every case (square, landscape, portrait,
    /// RGBA with alpha 0/255 and with every alpha level, upscaled, not resized, a thin strip, a non-square crop).
    @Test func preprocessingMatchesCLIPImageProcessor() throws {
        let levels = try SafeTensorsFile(path: Self.fixtures + "/preprocess/levels.safetensors").tensor("pixel_values")
        let cases = try Self.cases()
        #expect(cases.count == 8)
        // The level table itself: what CLIPImageProcessorPil makes of every 8-bit level.
        let ramp = (0..<(224 * 224)).flatMap { i in (0..<3).map { c in UInt8((i + 85 * c) % 256) } }
        let table = try CLIPImageProcessor().pixelValues(pixels: ramp, width: 224, height: 224, channels: 3)
        var tableError: Float = 0
        for c in 0..<3 {
            for i in 0..<(224 * 224) { tableError = max(tableError, abs(table.data[c * 224 * 224 + i] - levels.data[c * 256 + (i + 85 * c) % 256])) }
        }
        #expect(tableError == 0)
        for c in cases {
            let input = try Self.input(c)
            let processor = CLIPImageProcessor(resize: .shortestEdge(c.shortest_edge), cropSize: .init(height: c.crop_height, width: c.crop_width))
            let got = try processor.resizedAndCropped(pixels: input.pixels, width: input.width, height: input.height, channels: input.channels)
            let values = try processor.pixelValues(pixels: input.pixels, width: input.width, height: input.height, channels: input.channels)
            let expected = try Self.expected(c, levels: levels)
            #expect([got.width, got.height] == c.output_size && values.shape == [1, 3, c.output_size[1], c.output_size[0]])
            let differing = zip(got.rgb, expected.rgb).filter { $0 != $1 }.count
            let largest = zip(got.rgb, expected.rgb).map { abs(Int($0) - Int($1)) }.max() ?? 0
            let valueError = zip(values.data, expected.pixelValues).map { abs($0 - $1) }.max() ?? .infinity
            print("preprocess \(c.name): \(differing) of \(got.rgb.count) bytes differ (at most \(largest)), pixel_values max |error| \(valueError)")
            #expect(got.rgb.count == expected.rgb.count && differing == 0 && valueError == 0, "\(c.name)")
        }
    }

    /// The comparison sees wrong preprocessing: RGBA's alpha dropped instead of composited, a crop one pixel off, and
    /// a plain (non-PIL) bicubic tap count.
    @Test func wrongPreprocessingFailsTheComparison() throws {
        let levels = try SafeTensorsFile(path: Self.fixtures + "/preprocess/levels.safetensors").tensor("pixel_values")
        let cases = try Self.cases()
        let ramp = try #require(cases.first { $0.alpha_ramp }), square = try #require(cases.first { $0.name == "umbrella-square" })
        let processor = CLIPImageProcessor()
        // Alpha dropped.
        var input = try Self.input(ramp)
        let rgb = (0..<(input.width * input.height)).flatMap { input.pixels[($0 * 4)..<($0 * 4 + 3)] }
        let flat = try processor.resizedAndCropped(pixels: rgb, width: input.width, height: input.height, channels: 3)
        #expect(zip(flat.rgb, try Self.expected(ramp, levels: levels).rgb).filter { $0 != $1 }.count > 10_000)
        // The picture shifted by one column: the crop lands one pixel off.
        input = try Self.input(square)
        var shifted = input.pixels
        for y in 0..<input.height {
            for x in 0..<(input.width - 1) {
                for c in 0..<3 { shifted[(y * input.width + x) * 3 + c] = input.pixels[(y * input.width + x + 1) * 3 + c] }
            }
        }
        let off = try processor.resizedAndCropped(pixels: shifted, width: input.width, height: input.height, channels: 3)
        #expect(zip(off.rgb, try Self.expected(square, levels: levels).rgb).filter { $0 != $1 }.count > 10_000)
        // Another normalisation.
        let values = try CLIPImageProcessor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
            .pixelValues(pixels: input.pixels, width: input.width, height: input.height, channels: 3)
        #expect(zip(values.data, try Self.expected(square, levels: levels).pixelValues).map { abs($0 - $1) }.max()! > 0.1)
    }

    @Test func preprocessorConfigurations() throws {
        let defaults = CLIPImageProcessor()
        #expect(try CLIPImageProcessor(json: [:]) == defaults)
        // openai/clip-vit-large-patch14's file (the old style) and the style transformers writes now.
        let old: [String: Any] = ["crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
                                  "feature_extractor_type": "CLIPFeatureExtractor", "resample": 3, "size": 224,
                                  "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]]
        let new: [String: Any] = ["crop_size": ["height": 224, "width": 224], "do_convert_rgb": true, "do_rescale": true,
                                  "rescale_factor": 0.00392156862745098, "size": ["shortest_edge": 224], "resample": 3,
                                  "image_processor_type": "CLIPImageProcessor"]
        #expect(try CLIPImageProcessor(json: old) == defaults)
        #expect(try CLIPImageProcessor(json: new) == defaults)
        let square = try CLIPImageProcessor(json: ["size": ["height": 256, "width": 256], "do_center_crop": false, "do_normalize": false])
        #expect(square.resize == .exact(height: 256, width: 256) && square.cropSize == nil && square.mean == nil)
        for bad: [String: Any] in [["resample": 2], ["size": "224"], ["size": ["shortest_edge": 0]], ["crop_size": 22.5],
                                   ["image_mean": [0.5, 0.5]], ["image_std": [0.5, 0, 0.5]], ["do_resize": "yes"],
                                   ["rescale_factor": -1], ["size": ["shortest_edge": 224, "longest_edge": 300]]] {
            #expect(throws: ModelError.self, "\(bad)") { try CLIPImageProcessor(json: bad) }
        }
        // Pictures that do not fit their size or channel count.
        for (count, width, height, channels) in [(10, 2, 2, 3), (15, 2, 2, 4), (8, 2, 2, 2), (0, 0, 0, 3)] {
            #expect(throws: ModelError.self) { try defaults.pixelValues(pixels: [UInt8](repeating: 0, count: count), width: width, height: height, channels: channels) }
        }
        // A resize past 64 M pixels.
        #expect(throws: ModelError.self) {
            try CLIPImageProcessor(resize: .exact(height: 16384, width: 16384)).pixelValues(pixels: [0, 0, 0], width: 1, height: 1, channels: 3)
        }
        // A crop larger than the picture pads with black, as transformers' center_crop does.
        let padded = try CLIPImageProcessor(resize: nil, cropSize: .init(height: 4, width: 3), rescaleFactor: nil, mean: nil, std: nil)
            .resizedAndCropped(pixels: [UInt8](repeating: 200, count: 2 * 2 * 3), width: 2, height: 2, channels: 3)
        #expect(padded.width == 3 && padded.height == 4)
        // numpy: top = (2 - 4) // 2 = -1, left = (2 - 3) // 2 = -1: rows 1...2 and columns 1...2 hold the picture.
        let lit = (0..<12).filter { padded.rgb[$0 * 3] == 200 }
        #expect(lit == [4, 5, 7, 8])
    }
}
