// Parallel: every index runs exactly once, on the OpenMP team (the default where oneDNN's libgomp is loaded: then on
// more than one thread where there are cores) and on Dispatch; a parallel loop inside another one covers its range.
import CTensorKernels
import Foundation
import PaintsTensor
import Synchronization
import Testing

@Suite struct ParallelTests {
    /// How often each index ran, and on how many threads, for `forEach(count)` and `forEachChunk(count)`.
    func coverage(_ count: Int, chunked: Bool) -> (runs: [Int], threads: Int) {
        let runs = Mutex([Int](repeating: 0, count: count)), threads = Mutex(Set<pthread_t>())
        @Sendable func record(_ i: Int) {
            // Long enough (a few milliseconds in all) that a team that ran everything on one thread would be seen.
            var x = Double(i)
            for _ in 0..<20_000 { x = (x * 1.000_001).squareRoot() + 1 }
            runs.withLock { $0[i] += Int(x.isNaN ? 2 : 1) }
            threads.withLock { _ = $0.insert(pthread_self()) }
        }
        if chunked {
            Parallel.forEachChunk(count, minimumChunk: 1) { range in for i in range { record(i) } }
        } else {
            Parallel.forEach(count) { record($0) }
        }
        return (runs.withLock { $0 }, threads.withLock { $0.count })
    }

    @Test(arguments: [Parallel.Threads.openMP, .dispatch])
    func everyIndexRunsOnceOnSeveralThreads(_ threads: Parallel.Threads) {
        Parallel.$threads.withValue(threads) {
            for count in [1, 2, 3, 7, 64] {
                for chunked in [false, true] {
                    let (runs, used) = coverage(count, chunked: chunked)
                    #expect(runs == [Int](repeating: 1, count: count), "\(threads) count \(count) chunked \(chunked): \(runs)")
                    // An OpenMP team has the threads asked for; Dispatch may run all on one when its pool is busy.
                    if count >= 2 && Parallel.cores >= 2 && threads == .openMP && pk_openmp_team_available() != 0 {
                        #expect(used >= 2, "\(threads) count \(count) chunked \(chunked) ran on \(used) thread")
                    }
                }
            }
        }
    }

    @Test func theDefaultIsTheOpenMPTeamWhereLibgompIsLoaded() {
        print("libgomp loaded: \(pk_openmp_team_available() != 0); default threads: \(Parallel.defaultThreads)")
        if ProcessInfo.processInfo.environment["PAINTSD_PARALLEL"] == nil {
            #expect((Parallel.defaultThreads == .openMP) == (pk_openmp_team_available() != 0))
        }
    }

    @Test(arguments: [Parallel.Threads.openMP, .dispatch])
    func aLoopInsideALoopCoversItsRange(_ threads: Parallel.Threads) {
        Parallel.$threads.withValue(threads) {
            let cells = Mutex([Int](repeating: 0, count: 5 * 9))
            Parallel.forEach(5) { row in
                Parallel.forEachChunk(9, minimumChunk: 1) { range in
                    for column in range { cells.withLock { $0[row * 9 + column] += 1 } }
                }
            }
            #expect(cells.withLock { $0 } == [Int](repeating: 1, count: 45))
        }
    }
}
