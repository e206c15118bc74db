// PaintsTestSupport/RecordingContext: a JobContext that records progress and can cancel itself after N reports.
import PaintsEngine
import PaintsProtocol
import PaintsRaster
import Synchronization

public final class RecordingContext: JobContext {
    public struct Report: Sendable {
        public var stage: String
        public var step: Int
        public var steps: Int
        public var fraction: Double
        public var hasPreview: Bool
    }
    private let state = Mutex<[Report]>([])
    private let cancelAfter: Int?

    /// - Parameter cancelAfter: report count after which `checkCancellation` throws.
    public init(cancelAfter: Int? = nil) { self.cancelAfter = cancelAfter }

    public var reports: [Report] { state.withLock { $0 } }

    public func checkCancellation() throws(ProtocolError) {
        if let cancelAfter, state.withLock({ $0.count }) >= cancelAfter {
            throw ProtocolError(.cancelled, "cancelled by the test")
        }
    }

    public func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?) {
        state.withLock { $0.append(Report(stage: stage, step: step, steps: steps, fraction: fraction, hasPreview: preview != nil)) }
    }
}
