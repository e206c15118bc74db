// PaintsTensor/Parallel: element-wise work split across the cores (Dispatch's concurrentPerform).
import Dispatch
import Foundation

public enum Parallel {
    /// Worker count: the active cores.
    public static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint chunks covering 0..<count; small counts run on the calling thread.
    public static func forEachChunk(_ count: Int, minimumChunk: Int = 32_768, _ body: @Sendable (Range<Int>) -> Void) {
        let chunks = min(cores, max(1, count / minimumChunk))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            body((count * c / chunks)..<(count * (c + 1) / chunks))
        }
    }

    /// Calls `body(i)` for i in 0..<count, spread across cores (for coarse items such as channels or rows).
    public static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if count <= 1 || cores == 1 {
            for i in 0..<count { body(i) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: min(count, cores)) { c in
            var i = c
            while i < count {
                body(i)
                i += min(count, cores)
            }
        }
    }
}
