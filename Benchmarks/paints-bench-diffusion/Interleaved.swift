// paints-bench-diffusion/Interleaved: paintsd and OpenVINO timed part by part in turn (--interleaved-openvino), so that
// the machine's drift (10-35% within minutes here) falls on both engines alike. OpenVINO runs in
// Benchmarks/torch/sd15_openvino_server.py, started once with its models compiled; both engines stay loaded and never
// run at once. Each round times every part once on each engine, the engine that goes first alternating by round; a
// text-encoder part is timed as `clipCalls` calls on each side. Prints per part the min and median of each engine and
// the paired ratio (OpenVINO's time over paintsd's, of the same round): its median and the rounds paintsd won.
import Foundation
import PaintsDiffusion
import PaintsTensor

/// One engine's timings of one part, round by round.
private struct PartTimes {
    var paintsd: [Double] = []
    var openvino: [Double] = []
}

/// The OpenVINO server: a child process read and written one line at a time.
private final class OpenVINOServer {
    let process = Process()
    let input = Pipe(), output = Pipe()
    private var buffer = Data()

    init(python: String, script: String, folder: String, parts: [String]) throws {
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, folder] + parts
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// The next line the server prints (nil at its end).
    func line() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return text
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }

    /// OpenVINO's seconds for one inference of `part`.
    func time(_ part: String) throws -> Double {
        input.fileHandleForWriting.write(Data((part + "\n").utf8))
        guard let text = line(), let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let s = object["s"] as? Double
        else { throw InterleavedError.server("no time for \(part)") }
        return s
    }

    func quit() {
        input.fileHandleForWriting.write(Data("quit\n".utf8))
        process.waitUntilExit()
    }
}

/// Prints and flushes at once, so that a log file follows the run round by round.
private func say(_ line: String) {
    print(line)
    fflush(nil)
}

enum InterleavedError: Error {
    case server(String)
}

/// `parts`: names of sd15_openvino_server.py (unet_batch1, unet_batch2, controlnet_step, vae_decode_512, vae_encode_512,
/// vae_decode_1024, vae_encode_1024, clip_encode); `python`: the fixture venv's interpreter; `script`: the server's path.
@MainActor func runInterleavedOpenVINO(folder: String, parts: [String], rounds: Int, python: String, script: String,
                                       clipCalls: Int = 10) throws {
    say("cpu: \(cpuSummary())")
    let peak = FMAPeak.widths.compactMap { FMAPeak.measure(width: $0) }.max() ?? 0
    say(String(format: "FMA peak %.0f GFLOP/s (2 threads); paintsd convolutions: %@", peak, OneDNN.description))
    say("starting OpenVINO (converting and compiling \(parts.joined(separator: ", ")): minutes)...")
    let server = try OpenVINOServer(python: python, script: script, folder: folder, parts: parts)
    while let text = server.line() {
        say("  openvino: " + text)
        if text.hasPrefix("ready") { break }
    }
    guard server.process.isRunning else { throw InterleavedError.server("the OpenVINO server ended before it was ready") }

    // paintsd's parts, on the same f32 files, each run once as a warm-up.
    var noise = SeededNormalNoise(seed: 1)
    var runs: [String: () throws -> Void] = [:]
    if parts.contains(where: { $0.hasPrefix("unet") }) {
        let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
        for batch in [1, 2] {
            let x = Tensor(shape: [batch, 4, 64, 64], data: noise.normal(count: batch * 4 * 64 * 64))
            let c = Tensor(shape: [batch, 77, 768], data: noise.normal(count: batch * 77 * 768))
            runs["unet_batch\(batch)"] = { _ = try unet(x, timesteps: [Float](repeating: 500, count: batch), context: c) }
        }
    }
    if parts.contains("controlnet_step") {
        // As the sequential benchmark times it: the hint embedded once per run (StableDiffusionPipeline does), then per
        // step the ControlNet on the batch of two and the UNet with its residuals.
        let unet = try UNet2DConditionModel(folder: folder + "/unet", variant: "")
        let controlNet = try ControlNetModel(folder: folder + "/controlnet/sd15-lineart-random", variant: "")
        let d = controlNet.conditioningDownscale
        let x = Tensor(shape: [2, 4, 64, 64], data: noise.normal(count: 2 * 4 * 64 * 64))
        let c = Tensor(shape: [2, 77, 768], data: noise.normal(count: 2 * 77 * 768))
        let hint = Tensor(shape: [1, 3, 64 * d, 64 * d], data: noise.normal(count: 3 * 64 * d * 64 * d).map { $0 > 1.28 ? 1 : 0 })
        let embedded = try controlNet.embedHint(hint)
        let pair = Tensor(shape: [2] + Array(embedded.shape.dropFirst()), data: embedded.data + embedded.data)
        runs["controlnet_step"] = {
            let residuals = try controlNet(x, timesteps: [500], context: c, embeddedHint: pair)
            _ = try unet(x, timesteps: [500], context: c,
                         conditioning: UNetConditioning(downResiduals: residuals.down, midResidual: residuals.mid))
        }
    }
    if parts.contains(where: { $0.hasPrefix("vae") }) {
        let vae = try AutoencoderKL(folder: folder + "/vae", variant: "")
        for side in [64, 128] {
            let z = Tensor(shape: [1, 4, side, side], data: noise.normal(count: 4 * side * side))
            let image = Tensor(shape: [1, 3, 8 * side, 8 * side], data: noise.normal(count: 3 * 64 * side * side).map { max(-1, min(1, $0 / 3)) })
            runs["vae_decode_\(8 * side)"] = { _ = try vae.decode(z) }
            runs["vae_encode_\(8 * side)"] = { _ = try vae.encode(image) }
        }
    }
    if parts.contains("clip_encode") {
        let clip = try CLIPTextModel(folder: folder + "/text_encoder", variant: "")
        let ids = [(0..<77).map { ($0 * 7919) % 49408 }]
        runs["clip_encode"] = { _ = try clip.encode(ids) }
    }
    for part in parts {
        guard let run = runs[part] else { throw InterleavedError.server("paintsd has no part \(part)") }
        try run()
    }

    var times = [String: PartTimes]()
    for round in 0..<rounds {
        for part in parts {
            let calls = part == "clip_encode" ? clipCalls : 1
            var entry = times[part] ?? PartTimes()
            for first in round % 2 == 0 ? ["paintsd", "openvino"] : ["openvino", "paintsd"] {
                var best = Double.infinity
                for _ in 0..<calls {
                    best = min(best, first == "paintsd" ? try seconds { try runs[part]!() } : try server.time(part))
                }
                if first == "paintsd" { entry.paintsd.append(best) } else { entry.openvino.append(best) }
            }
            times[part] = entry
            say(String(format: "  round %d %@: paintsd %.3f s, openvino %.3f s", round + 1, part, entry.paintsd.last!, entry.openvino.last!))
        }
    }
    server.quit()

    say("interleaved, \(rounds) rounds (text encoder: best of \(clipCalls) calls per round and engine); "
          + "ratio: OpenVINO's time / paintsd's in the same round (above 1: paintsd faster)")
    say("  part               paintsd min  median   openvino min  median   ratio median (range)   paintsd faster")
    for part in parts {
        let t = times[part]!
        let ratios = zip(t.openvino, t.paintsd).map { $0 / $1 }
        say(String(format: "  %@ %8.3f s %8.3f s %10.3f s %8.3f s   %6.2fx (%.2f-%.2f)   %d of %d rounds",
                     part.padding(toLength: 17, withPad: " ", startingAt: 0), t.paintsd.min()!, median(t.paintsd),
                     t.openvino.min()!, median(t.openvino), median(ratios), ratios.min()!, ratios.max()!,
                     ratios.filter { $0 > 1 }.count, ratios.count))
    }
}
