// TAESD against diffusers: a tiny random AutoencoderTiny (real block counts, narrow widths) loaded from its diffusers
// folder; Tests/Fixtures/taesd/generate.py writes it and checks the latent convention on diffusers' own pipeline.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct TAESDParityTests {
    static let folder = Repository.path("Tests/Fixtures/taesd/tiny")

    @Test func decodeAndEncodeMatchDiffusers() throws {
        let taesd = try AutoencoderTiny(folder: Self.folder)
        let io = try SafeTensorsFile(path: Self.folder + "/io.safetensors")
        let latents = try io.tensor("latents"), image = try io.tensor("image")
        let decoded = try taesd.decode(latents), encoded = try taesd.encode(image)
        let decodeError = relativeError(decoded, try io.tensor("decoded"))
        let encodeError = relativeError(encoded, try io.tensor("latents_encoded"))
        print("taesd: decode \(decodeError), encode \(encodeError)")
        #expect(decoded.shape == [2, 3, 48, 40] && encoded.shape == [2, 4, 6, 5])
        #expect(decodeError <= 1e-4 && encodeError <= 1e-4)
        #expect(taesd.configuration.scalingFactor == 1 && taesd.configuration.shiftFactor == 0)
        #expect(taesd.decoderScale == 8 && taesd.encoderScale == 8)
        // The fixture tells the conventions apart, or this test proves nothing: latents unscaled as for the SD VAE
        // (/ 0.18215), or an image already mapped to 0...1, give other results.
        let unscaled = relativeError(try taesd.decode(latents.map { $0 / 0.18215 }), try io.tensor("decoded"))
        let zeroToOne = relativeError(try taesd.encode(image.map { ($0 + 1) / 2 }), try io.tensor("latents_encoded"))
        print("taesd: wrong conventions: decode of latents / 0.18215 \(unscaled), encode of a 0...1 image \(zeroToOne)")
        #expect(unscaled > 1e-2 && zeroToOne > 1e-2)
    }

    @Test func badConfigurationsWeightsAndInputsAreTypedErrors() throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.folder + "/config.json"))) as? [String: Any])
        let weights = try WeightStore(path: Self.folder + "/diffusion_pytorch_model.safetensors")
        func load(_ edit: (inout [String: Any]) -> Void) throws -> AutoencoderTiny {
            var j = json
            edit(&j)
            return try AutoencoderTiny(configuration: AutoencoderTinyConfiguration(json: j), weights: weights)
        }
        _ = try load { _ in }
        #expect(throws: ModelError.self) { try load { $0["upsample_fn"] = "bilinear" } }
        #expect(throws: ModelError.self) { try load { $0["act_fn"] = "tanh" } }
        #expect(throws: ModelError.self) { try load { $0["num_decoder_blocks"] = [3, 3, 3] } }       // lengths differ
        #expect(throws: ModelError.self) { try load { $0["num_decoder_blocks"] = [3, 3, 3, 2] } }    // a missing block
        #expect(throws: ModelError.self) { try load { $0["num_encoder_blocks"] = [1, 3, 4, 2] } }    // indices shift
        #expect(throws: ModelError.self) { try load { $0["latent_channels"] = 16 } }
        #expect(throws: ModelError.self) { try load { $0["scaling_factor"] = 0 } }
        let taesd = try load { _ in }
        #expect(throws: ModelError.self) { try taesd.decode(Tensor(zeros: [1, 3, 4, 4])) }
        #expect(throws: ModelError.self) { try taesd.encode(Tensor(zeros: [1, 4, 16, 16])) }
        #expect(throws: ModelError.self) { try taesd.decode(Tensor(zeros: [4, 4, 4])) }
    }

    @Test func scalingAndShiftFactorsAreAppliedAsDiffusersPipelinesDo() throws {
        // A config with scaling_factor s and shift_factor t decodes latents / s + t and encodes (latents - t) * s.
        let base = try AutoencoderTiny(folder: Self.folder)
        var c = base.configuration
        c.scalingFactor = 0.5
        c.shiftFactor = 0.25
        let scaled = try AutoencoderTiny(configuration: c, weights: WeightStore(path: Self.folder + "/diffusion_pytorch_model.safetensors"))
        let io = try SafeTensorsFile(path: Self.folder + "/io.safetensors")
        let latents = try io.tensor("latents"), image = try io.tensor("image")
        #expect(relativeError(try scaled.decode(latents), try base.decode(latents.map { $0 / 0.5 + 0.25 })) <= 1e-6)
        #expect(relativeError(try scaled.encode(image), try base.encode(image).map { ($0 - 0.25) * 0.5 }) <= 1e-6)
    }
}
