// PaintsTensor/Parallel: element-wise work split across the cores, on the OpenMP team oneDNN runs its primitives on
// (libgomp), or on Dispatch's concurrentPerform where that runtime is not loaded or PAINTSD_PARALLEL=dispatch.
//
// Two pools on two cores fight: after each oneDNN primitive its OpenMP worker spins (GOMP_SPINCOUNT rounds) waiting
// for the next one, and a Dispatch worker woken meanwhile shares a core with it until the spin ends. With both kinds of
// work on one team, the spinning worker takes our next task at once.
import CTensorKernels
import Dispatch
import Foundation

public enum Parallel {
    /// Worker count: the active cores.
    public static let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)

    /// The threads that run the chunks.
    public enum Threads: String, Sendable {
        /// The OpenMP team oneDNN's primitives run on (libgomp loaded).
        case openMP = "openmp"
        /// Dispatch's concurrentPerform.
        case dispatch
    }

    /// The default: the OpenMP team where libgomp is loaded, unless PAINTSD_PARALLEL=dispatch (`hello.compute.parallel`).
    public static let defaultThreads: Threads = ProcessInfo.processInfo.environment["PAINTSD_PARALLEL"] != "dispatch"
        && pk_openmp_team_available() != 0 ? .openMP : .dispatch

    /// The threads used now (benchmarks compare the two within one process); `.openMP` falls back to Dispatch
    /// without libgomp.
    @TaskLocal public static var threads: Threads = defaultThreads

    /// Calls `body` on disjoint chunks covering 0..<count; small counts run on the calling thread.
    public static func forEachChunk(_ count: Int, minimumChunk: Int = 32_768, _ body: @Sendable (Range<Int>) -> Void) {
        let chunks = chunkCount(count, minimumChunk: minimumChunk)
        if chunks <= 1 {
            body(0..<count)
            return
        }
        run(chunks) { c in body((count * c / chunks)..<(count * (c + 1) / chunks)) }
    }

    /// How many chunks `forEachChunk` and `forEachIndexedChunk` split `count` into.
    public static func chunkCount(_ count: Int, minimumChunk: Int = 32_768) -> Int { min(cores, max(1, count / minimumChunk)) }

    /// `forEachChunk` with each chunk's index (0..<chunkCount): for work that needs a buffer of its own per chunk.
    public static func forEachIndexedChunk(_ count: Int, minimumChunk: Int = 32_768, _ body: @Sendable (_ chunk: Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count, minimumChunk: minimumChunk)
        if chunks <= 1 {
            body(0, 0..<count)
            return
        }
        run(chunks) { c in body(c, (count * c / chunks)..<(count * (c + 1) / chunks)) }
    }

    /// Calls `body(i)` for i in 0..<count, spread across cores (for coarse items such as channels or rows).
    public static func forEach(_ count: Int, _ body: @Sendable (Int) -> Void) {
        if count <= 1 || cores == 1 {
            for i in 0..<count { body(i) }
            return
        }
        let workers = min(count, cores)
        run(workers) { c in
            var i = c
            while i < count {
                body(i)
                i += workers
            }
        }
    }

    /// Runs `body(0..<workers)` at once on as many threads, the calling thread one of them.
    private static func run(_ workers: Int, _ body: @Sendable (Int) -> Void) {
        if threads == .openMP {
            let ran = withoutActuallyEscaping(body) { body in
                var task = body
                return withUnsafeMutablePointer(to: &task) { pointer in
                    pk_openmp_team_run(workers, Int32(workers), pointer) { context, index in
                        context!.assumingMemoryBound(to: (@Sendable (Int) -> Void).self).pointee(index)
                    }
                }
            }
            if ran != 0 { return }
        }
        DispatchQueue.concurrentPerform(iterations: workers, execute: body)
    }
}
