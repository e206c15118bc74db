// Cancellation inside a model pass: a cancelled job must stop within a block or a convolution tile, not at the end of a
// step or of a whole VAE decode (issue 10).
import Foundation
import PaintsDiffusion
import PaintsTensor
import PaintsTestSupport
import Synchronization
import Testing

/// A check that answers "stop" from its call number `after + 1` on, and counts its calls.
final class CountingCheck: Sendable {
    let after: Int
    private let calls = Mutex(0)
    init(after: Int) { self.after = after }
    var count: Int { calls.withLock { $0 } }
    func callAsFunction() -> Bool { calls.withLock { $0 += 1; return $0 > after } }
}

@Suite struct ComputeCancellationTests {
    let folder = Repository.path("Tests/Fixtures/diffusion/vae")

    @Test func aVAEDecodeStopsInsideWhenCancelledAndRunsWholeOtherwise() throws {
        let vae = try AutoencoderKL(folder: folder)
        let latents = try SafeTensorsFile(path: folder + "/io.safetensors").tensor("latents")
        // Never cancelled: the same result as with no check bound, and the check was polled many times in one decode.
        let never = CountingCheck(after: .max)
        let whole = try ComputeCancellation.run(whileNot: { never() }) { () throws(ModelError) in try vae.decode(latents) }
        #expect(whole == (try vae.decode(latents)))
        #expect(never.count >= 10, "a decode polled \(never.count) times")
        // Cancelled after the third poll: the decode throws `cancelled` and polls no more.
        let soon = CountingCheck(after: 3)
        #expect {
            try ComputeCancellation.run(whileNot: { soon() }) { () throws(ModelError) in try vae.decode(latents) }
        } throws: { error in
            if case ModelError.tensor(.cancelled) = error { return true }
            return false
        }
        #expect(soon.count == 4)
    }

    @Test func aConvolutionStopsBetweenTiles() throws {
        // Large enough that the convolution runs in several tiles (OpenBLAS) or bands (oneDNN) of output rows.
        let side = 256, channels = 64
        let x = Tensor(shape: [1, channels, side, side], data: (0..<(channels * side * side)).map { Float($0 % 7) })
        let weight = Tensor(shape: [channels, channels, 3, 3], data: (0..<(channels * channels * 9)).map { Float($0 % 5) / 10 })
        #expect(channels * 9 * side * side > Tensor.maxColumnFloats, "one tile would hold the whole convolution")
        #expect(2 * Double(channels * channels * 9 * side * side) > Tensor.maxBandFLOPs, "one band would hold the whole convolution")
        let check = CountingCheck(after: 1)
        #expect(throws: TensorError.cancelled) {
            try ComputeCancellation.run(whileNot: { check() }) { () throws(TensorError) in
                try x.conv2d(weight: weight, bias: nil, padding: 1)
            }
        }
        #expect(check.count == 2)
    }
}
