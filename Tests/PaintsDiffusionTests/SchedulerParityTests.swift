// Schedulers against diffusers: tables, timesteps and whole sampling trajectories from Tests/Fixtures/diffusion.
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Testing

struct SchedulerFixture {
    let file: SafeTensorsFile
    let className: String
    let configuration: SchedulerConfiguration
    let steps: Int
    /// LCM and TCD: img2img strength (set_timesteps(strength=)) and TCD's gamma (step's eta), from the metadata.
    let strength: Float
    let gamma: Double

    /// `folder`: the fixture folder under Tests/Fixtures (schedulers-fewstep's scripts write the same format).
    init(_ name: String, folder: String = "diffusion") throws {
        file = try SafeTensorsFile(path: Repository.path("Tests/Fixtures/\(folder)/scheduler-\(name).safetensors"))
        className = file.metadata["class"] ?? ""
        let json = try JSONSerialization.jsonObject(with: Data((file.metadata["config"] ?? "{}").utf8)) as? [String: Any] ?? [:]
        configuration = try SchedulerConfiguration(json: json)
        steps = Int(file.metadata["steps"] ?? "") ?? 0
        strength = Float(file.metadata["strength"] ?? "") ?? 1
        gamma = Double(file.metadata["gamma"] ?? "") ?? 0.3
    }

    func makeScheduler() -> any Scheduler {
        switch className {
        case "DDIMScheduler": DDIMScheduler(configuration, steps: steps)
        case "EulerAncestralDiscreteScheduler": EulerAncestralScheduler(configuration, steps: steps)
        case "EulerDiscreteScheduler": EulerScheduler(configuration, steps: steps)
        case "DPMSolverMultistepScheduler": DPMSolverMultistepScheduler(configuration, steps: steps)
        case "LCMScheduler": LCMScheduler(configuration, steps: steps, strength: strength)
        case "TCDScheduler": TCDScheduler(configuration, steps: steps, strength: strength, gamma: gamma)
        default: UniPCMultistepScheduler(configuration, steps: steps)
        }
    }
}

@Suite struct SchedulerParityTests {
    static let cases = ["ddim-sd15", "ddim-vpred-zsnr", "euler-a-sd15", "euler-a-linear-vpred", "dpmpp2m-karras",
                        "dpmpp2m-linear-vpred", "unipc-sd15", "unipc-karras-vpred"]

    @Test(arguments: cases)
    func tablesMatchDiffusers(_ name: String) throws {
        let fixture = try SchedulerFixture(name)
        let scheduler = fixture.makeScheduler()
        let expectedTimesteps = try fixture.file.floats("timesteps").map(Double.init)
        #expect(scheduler.timesteps == expectedTimesteps)
        let schedule = NoiseSchedule(fixture.configuration, finiteTerminalSigma: fixture.className != "DDIMScheduler")
        let tableError = relativeError(schedule.alphasCumprod, try fixture.file.floats("alphas_cumprod"))
        #expect(tableError <= 1e-6, "alphas_cumprod relative error \(tableError)")
        #expect(abs(Double(scheduler.initNoiseSigma) - Double(try fixture.file.floats("init_noise_sigma")[0]))
            <= 1e-6 * max(1, Double(scheduler.initNoiseSigma)))
        let sigmas: [Float]? = switch scheduler {
        case let s as EulerAncestralScheduler: s.sigmas
        case let s as DPMSolverMultistepScheduler: s.sigmas
        case let s as UniPCMultistepScheduler: s.sigmas
        default: nil
        }
        if let sigmas {
            let error = relativeError(sigmas, try fixture.file.floats("sigmas"))
            #expect(error <= 1e-6, "sigmas relative error \(error)")
        }
    }

    @Test(arguments: cases)
    func trajectoriesMatchDiffusers(_ name: String) throws {
        let fixture = try SchedulerFixture(name)
        var scheduler = fixture.makeScheduler()
        let noiseNames = fixture.file.names.filter { $0.hasPrefix("noise_") }.sorted { Int($0.dropFirst(6))! < Int($1.dropFirst(6))! }
        var noise = ReplayedNoise(try noiseNames.map { try fixture.file.floats($0) })
        var sample = try fixture.file.floats("sample_0")
        var worst = 0.0
        for (i, t) in scheduler.timesteps.enumerated() {
            let input = scheduler.scaleModelInput(sample, step: i)
            let inputError = relativeError(input, try fixture.file.floats("model_input_\(i)"))
            // The toy model of generate.py: tanh(0.7 x) * 0.9 + 0.01 t / 1000.
            let output = input.map { tanh($0 * 0.7) * 0.9 + Float(0.01 * t / 1000) }
            sample = scheduler.step(output: output, step: i, sample: sample, noise: &noise)
            let error = relativeError(sample, try fixture.file.floats("sample_\(i + 1)"))
            worst = max(worst, max(error, inputError))
        }
        print("scheduler \(name): worst relative error over \(scheduler.timesteps.count) steps \(worst)")
        #expect(worst <= 1e-6)
    }
}
