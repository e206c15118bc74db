// HeapRetention: during a pass, a large block freed and allocated again comes back from the heap, without a page fault
// per 4 KiB page (counted by getrusage for this thread alone, so tests running beside it do not disturb the count); and
// when the kept memory goes back to the system (its ledger: other tests' passes would disturb glibc's state).
import Foundation
@testable import PaintsTensor
import Synchronization
import Testing

@Suite struct HeapRetentionTests {
    /// Minor page faults this thread took while `body` ran.
    func pageFaults(_ body: () -> Void) -> Int {
        let thread = __rusage_who_t(1)  // RUSAGE_THREAD (Linux), which Swift does not import without _GNU_SOURCE
        var before = rusage(), after = rusage()
        getrusage(thread, &before)
        body()
        getrusage(thread, &after)
        return after.ru_minflt - before.ru_minflt
    }

    /// Allocates a block of `bytes` and writes every byte (as a tensor operation does with its output), then frees it.
    func touch(_ bytes: Int) -> UInt8 {
        var block = [UInt8](repeating: 1, count: bytes)
        block[bytes - 1] = 2
        return block[bytes / 2] &+ block[bytes - 1]
    }

    @Test func aBlockFreedDuringAPassIsReusedWithoutPageFaults() throws {
        guard HeapRetention.isEnabled else { return }
        // 48 MiB: above the 32 MiB from which glibc maps a block on its own outside a pass (every allocation then
        // faults in all 12 288 of its pages), below the 64 MiB a non-main thread's heap can hold.
        let bytes = 48 << 20, pages = bytes / 4096
        // Tests running beside this one (VAE and UNet passes keep blocks too) may take the freed block between the two
        // allocations when their threads share this thread's malloc arena: on a thread of its own (a new thread gets a
        // new arena while there are fewer than 8 per core), the fewest faults of five tries.
        let result = Mutex(0)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let fewest = HeapRetention.during(.denoiser) { () -> Int in
                (0..<5).map { _ in
                    _ = touch(bytes)
                    return pageFaults { _ = touch(bytes) }
                }.min()!
            }
            result.withLock { $0 = fewest }
            done.signal()
        }
        thread.start()
        done.wait()
        let faults = result.withLock { $0 }
        #expect(faults < pages / 10, "\(faults) page faults for a block of \(pages) pages")
    }

    /// A pass's beginning as the ledger decides it: "return, keep", "keep" or "-".
    func begin(_ l: inout HeapRetention.Ledger, _ kind: HeapRetention.Pass) -> String {
        let (returnFirst, keep) = l.begin(kind)
        return [returnFirst ? "return" : nil, keep ? "keep" : nil].compactMap { $0 }.joined(separator: ", ").ifEmpty("-")
    }

    @Test func theNextPassOfTheSameKindFindsTheHeapKept() {
        var l = HeapRetention.Ledger()
        #expect(begin(&l, .textEncoder) == "keep")
        let textEncoderEnd = l.end()
        // The denoiser after the text encoder: returned first, then kept again.
        #expect(begin(&l, .denoiser) == "return, keep")
        _ = l.end()
        // The next sampler step finds it kept: nothing to do.
        #expect(begin(&l, .denoiser) == "-")
        let lastEnd = l.end()
        // The text encoder's deadline passes: nothing, as passes began and ended since.
        let early = l.expire(textEncoderEnd)
        #expect(!early && l.keeping)
        let due = l.expire(lastEnd)
        #expect(due && !l.keeping)
        // After the return the next pass begins keeping again.
        #expect(begin(&l, .denoiser) == "keep")
    }

    @Test func passesRunningTogetherKeepTheHeapUntilTheLastEnds() {
        var l = HeapRetention.Ledger()
        #expect(begin(&l, .denoiser) == "keep")
        // Another kind while one runs (a second job's VAE): nothing is returned under a running pass.
        #expect(begin(&l, .autoencoder) == "-")
        let firstEnd = l.end(), askedNow = l.expire(nil)
        #expect(firstEnd == nil && !askedNow)
        let lastEnd = l.end()
        let due = l.expire(lastEnd)
        #expect(lastEnd != nil && due)
        // Asked now (benchmarks) with nothing kept: nothing.
        let again = l.expire(nil)
        #expect(!again)
    }
}

extension String {
    fileprivate func ifEmpty(_ other: String) -> String { isEmpty ? other : self }
}
