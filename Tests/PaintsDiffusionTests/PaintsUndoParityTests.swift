// The Paints-UNDO single-frame model against the reference's own inference path (fixtures from
// Tests/Fixtures/paints-undo/generate.py): the patched UNet, the k-diffusion schedule, a whole keyframe run.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

@Suite struct PaintsUndoParityTests {
    let base = Repository.path("Tests/Fixtures/paints-undo")

    @Test func loaderTrustsTheTensorOverTheConfig() throws {
        let config = try String(contentsOfFile: base + "/model/unet/config.json", encoding: .utf8)
        #expect(config.contains("\"in_channels\": 4"))
        let pipeline = try PaintsUndoPipeline(folder: base + "/model")
        #expect(pipeline.unet.inChannels == 8)
        #expect(pipeline.unet.takesCodedConditions)
        #expect(PaintsUndoPipeline.isModelFolder(base + "/model"))
        #expect(!PaintsUndoPipeline.isModelFolder(Repository.path("Tests/Fixtures/diffusion/pipeline")))
        // The sd engine's model list leaves it out although the layout is a diffusers pipeline's.
        let directory = try TemporaryDirectory.make(prefix: "undo-models")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createSymbolicLink(atPath: directory + "/paints_undo_single_frame", withDestinationPath: base + "/model")
        #expect(StableDiffusionModel.models(in: directory).isEmpty)
    }

    @Test func patchedUNetMatchesTheReference() throws {
        let io = try SafeTensorsFile(path: base + "/unet-io.safetensors")
        let unet = try UNet2DConditionModel(folder: base + "/model/unet")
        let sample = try io.tensor("sample"), concat = try io.tensor("concat")
        let both = Tensor(shape: [2] + Array(concat.shape.dropFirst()), data: concat.data + concat.data)
        let input = Tensor.concatenatingChannels(sample, both)
        let added = try unet.codedConditionEmbedding(try io.integers("operation_steps").map { Float($0) })
        let out = try unet(input, timesteps: try io.integers("timesteps").map { Float($0) }, context: try io.tensor("context"),
                           conditioning: UNetConditioning(addedTimeEmbedding: added))
        let error = relativeError(out, try io.tensor("output"))
        print("paints-undo unet: relative error \(error)")
        #expect(error <= 1e-4)
        // Without the operation-step embedding the output differs: the fixture exercises that path.
        let plain = try unet(input, timesteps: try io.integers("timesteps").map { Float($0) }, context: try io.tensor("context"))
        #expect(relativeError(plain, try io.tensor("output")) > 1e-2)
    }

    @Test func scheduleMatchesKDiffusion() throws {
        let io = try SafeTensorsFile(path: base + "/schedule.safetensors")
        let schedule = DiscreteSigmaSchedule(linearBetasFrom: 0.00085, to: 0.020)
        #expect(relativeError(schedule.sigmas, try io.floats("sigmas_table")) <= 1e-6)
        for n in [50, 4] {
            let sigmas = schedule.karras(steps: n)
            let error = relativeError(sigmas, try io.floats("karras_\(n)"))
            #expect(error <= 1e-6, "karras \(n): \(error)")
            #expect(sigmas.dropLast().map { schedule.timestep(ofSigma: $0) } == (try io.integers("timesteps_\(n)")))
        }
    }

    @Test func keyframeRunMatchesTheReference() throws {
        let io = try SafeTensorsFile(path: base + "/sampling-io.safetensors")
        let pipeline = try PaintsUndoPipeline(folder: base + "/model")
        let cond = try pipeline.encodePrompt(io.metadata["prompt"] ?? "")
        #expect(relativeError(cond, try io.tensor("cond")) <= 1e-5)
        var request = PaintsUndoPipeline.Request(image: try io.tensor("image"), operationSteps: try io.integers("operation_steps"),
                                                 prompt: io.metadata["prompt"] ?? "")
        request.negativePrompt = io.metadata["negative_prompt"] ?? ""
        request.steps = Int(io.metadata["steps"] ?? "") ?? 0
        request.guidance = Float(io.metadata["cfg"] ?? "") ?? 0
        #expect(request.negativePrompt == PaintsUndoPipeline.defaultNegativePrompt)
        let expected = try io.tensor("pixels")
        let half = expected.count / 2
        for batch in [2, 1] {
            request.batchSize = batch
            var steps: [(Range<Int>, Int)] = [], finished: [Int] = []
            let frames = try pipeline.frames(request, noise: try io.floats("noise"), onStep: { chunk, step, _ in steps.append((chunk, step)) },
                                             onFrame: { index, _ in finished.append(index) })
            #expect(frames.count == 2)
            for (i, frame) in frames.enumerated() {
                let error = relativeError(frame.data, Array(expected.data[(i * half)..<((i + 1) * half)]))
                print("paints-undo keyframe \(i), batch \(batch): relative error \(error)")
                #expect(error <= 1e-3)
            }
            #expect(finished == [0, 1])
            #expect(steps.count == 4 * (batch == 2 ? 1 : 2))
        }
        // The two operation steps give different frames (the step embedding reaches the output).
        #expect(relativeError(Array(expected.data[0..<half]), Array(expected.data[half...])) > 1e-2)
    }
}
