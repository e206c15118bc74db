// PaintsTestSupport/RecordingContext: a JobContext that records progress and cancellation checks, and can cancel itself
// after N reports or N checks.
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
    private let state = Mutex<(reports: [Report], checks: Int, checksAtReport: [Int])>(([], 0, []))
    private let cancelAfter: Int?
    private let cancelAfterChecks: Int?

    /// - Parameters:
    ///   - cancelAfter: report count after which `checkCancellation` throws.
    ///   - cancelAfterChecks: `checkCancellation` throws from its call number `cancelAfterChecks + 1` on.
    public init(cancelAfter: Int? = nil, cancelAfterChecks: Int? = nil) {
        self.cancelAfter = cancelAfter
        self.cancelAfterChecks = cancelAfterChecks
    }

    public var reports: [Report] { state.withLock { $0.reports } }
    /// How many times the engine asked whether it was cancelled.
    public var checks: Int { state.withLock { $0.checks } }
    /// `checks` as it was when each report arrived.
    public var checksAtReport: [Int] { state.withLock { $0.checksAtReport } }

    public func checkCancellation() throws(ProtocolError) {
        let (reports, checks) = state.withLock { s in
            s.checks += 1
            return (s.reports.count, s.checks)
        }
        if let cancelAfter, reports >= cancelAfter { throw ProtocolError(.cancelled, "cancelled by the test") }
        if let cancelAfterChecks, checks > cancelAfterChecks { throw ProtocolError(.cancelled, "cancelled by the test") }
    }

    public func report(stage: String, step: Int, steps: Int, fraction: Double, preview: RGBAImage?) {
        state.withLock {
            $0.reports.append(Report(stage: stage, step: step, steps: steps, fraction: fraction, hasPreview: preview != nil))
            $0.checksAtReport.append($0.checks)
        }
    }
}
