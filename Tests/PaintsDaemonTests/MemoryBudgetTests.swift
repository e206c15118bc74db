// Memory bounded by the limits (issue 10): a job whose estimated peak does not fit the daemon's memory budget is
// refused before it runs, with the estimate; frames leave the engine one at a time.
import Foundation
import PaintsClient
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import PaintsTestSupport
import Testing

@Suite struct MemoryBudgetTests {
    /// A PNG of `side` x `side` all-zero pixels: a few kilobytes on the wire, gigabytes once decoded and worked on.
    func zeros(_ side: Int) throws -> Data { try PNGCodec.encode(RGBAImage(width: side, height: side), fast: false) }

    @Test func aJobOverTheBudgetIsRefusedWithItsEstimateAndTheDaemonServesOn() throws {
        let budget = 512 << 20
        let daemon = try TestDaemon { $0.memoryBudgetBytes = budget }
        defer { daemon.stop() }
        let client = try daemon.client()
        let hello = try client.call(.hello).result
        #expect(hello["limits"]?["memory_budget_bytes"]?.intValue == budget)
        #expect(hello["memory"]?["budget_bytes"]?.intValue == budget)
        let big = try zeros(3000)
        #expect(big.count < 200_000)
        let (_, refused) = try client.collect(.undoPreview, ["image": ["frame": 1, "encoding": "png"], "count": 64], frames: [big])
        let error = try #require(refused.protocolError)
        #expect(error.code == .resourceExhausted, "\(refused.header.serializedString())")
        let estimate = try #require(error.details["estimated_peak_bytes"]?.intValue)
        // At least the 64 frames themselves, as raw RGBA.
        #expect(estimate >= 64 * 3000 * 3000 * 4)
        #expect(error.details["memory_budget_bytes"]?.intValue == budget)
        ReplySchema.check(refused)
        // The same picture with one frame fits, runs, and its accepted reply carries its estimate.
        let small = try zeros(600)
        let (events, final) = try client.collect(.undoPreview, ["image": ["frame": 1, "encoding": "png"], "count": 2],
                                                 frames: [small], stream: true)
        #expect(final.type == .result, "\(final.header.serializedString())")
        let accepted = try #require(events.first { $0.type == .accepted })
        let smallEstimate = try #require(accepted.body["estimated_peak_bytes"]?.intValue)
        #expect(smallEstimate > 600 * 600 * 4 * 3 && smallEstimate < budget)
        ReplySchema.check(accepted)
        #expect(try client.call(.ping).result["pong"] == true)
    }

    @Test func estimatesGrowWithFramesAndPixels() {
        let engine = BuiltinEngine()
        let one = engine.estimatedPeakBytes(JobShape(method: .undoPreview, width: 1000, height: 1000, frames: 1))
        let many = engine.estimatedPeakBytes(JobShape(method: .undoPreview, width: 1000, height: 1000, frames: 16))
        let larger = engine.estimatedPeakBytes(JobShape(method: .undoPreview, width: 2000, height: 2000, frames: 1))
        #expect(many - one == 15 * 1000 * 1000 * 4)
        #expect(larger > 3 * one)
        // The case: 8000x8000, 64 frames, is more than 20 GiB.
        #expect(engine.estimatedPeakBytes(JobShape(method: .undoPreview, width: 8000, height: 8000, frames: 64)) > 20 << 30)
    }

    @Test func framesLeaveTheEngineOneAtATime() throws {
        let picture = try Repository.image("Examples/art/blocks-colored.png")
        let context = RecordingContext()
        var reportsAtEmit: [Int] = []
        let steps = [900, 600, 300]
        var emitted: [Int] = []
        _ = try BuiltinEngine().undoPreview(UndoPreviewInput(image: picture, steps: steps), context: context) { frame throws(ProtocolError) in
            emitted.append(frame.step)
            reportsAtEmit.append(context.reports.count)
        }
        #expect(emitted == steps)
        // Each frame is handed over before the next one is drawn (one "frame" report each).
        #expect(reportsAtEmit == [2, 3, 4])
    }
}
