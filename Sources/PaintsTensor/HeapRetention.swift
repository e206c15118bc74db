// PaintsTensor/HeapRetention: keeps freed tensor memory in the process heap for the length of a model pass.
//
// Every tensor operation allocates its output, and a UNet pass at 64x64 frees and allocates blocks of 10-84 MiB
// hundreds of times. glibc maps blocks that large on their own (or trims its heap back to the system), so each one
// comes back as fresh pages: a page fault and a page cleared per 4 KiB, about half a second of a CFG step's batch of two
// on the Zen 4 machine, and a fifth of a VAE pass at 1024x1024. During a pass (`during`: UNet, ControlNet, text encoder
// and VAE passes, nested or on several threads at once) glibc keeps blocks up to 256 MiB in its heap and never trims
// it. The heap stays so for `keepSeconds` after the last pass ends, so that a job's next pass of the same model kind
// (the next sampler step) finds its blocks in place instead of faulting them in again (a UNet pass at 64x64 touches
// about 200 MB); a pass of another kind (the VAE after the UNet, whose blocks would not fit the UNet's holes) and the
// end of that time return the freed memory to the system, so the daemon's resident size between jobs and a job's peak
// stay as they were. (The VAE's blocks normalize and add in place, so its passes hold fewer blocks at once than
// before even with them kept: a 512x512 txt2img peaks lower than without retention.) PAINTSD_HEAP_RETENTION=0 turns it
// off. A program whose passes run on other threads than its main one (the daemon's jobs) calls `configureProcess` first
// thing: glibc's arenas for other threads hold no block over 64 MiB (a CFG batch's GEGLU projection at 64x64 is
// 84 MiB).
import CTensorKernels
import Foundation
import Synchronization

public enum HeapRetention {
    /// Whether passes keep their freed memory (glibc only; PAINTSD_HEAP_RETENTION=0 turns it off).
    public static let isEnabled = ProcessInfo.processInfo.environment["PAINTSD_HEAP_RETENTION"] != "0"
        && pk_heap_retention(0) != 0

    /// One malloc arena for all threads, so a job thread's passes keep blocks over 64 MiB too; call it before any
    /// thread starts (paintsd and the benchmarks do, beside OpenBLASKernel's setup). Nothing when retention is off.
    public static func configureProcess() {
        guard ProcessInfo.processInfo.environment["PAINTSD_HEAP_RETENTION"] != "0" else { return }
        _ = pk_heap_single_arena()
    }

    /// Seconds the heap stays kept after the last pass ends (PAINTSD_HEAP_KEEP_SECONDS, default 10; 0 returns it as
    /// the pass ends).
    public static let keepSeconds = max(0, Double(ProcessInfo.processInfo.environment["PAINTSD_HEAP_KEEP_SECONDS"] ?? "") ?? 10)

    /// The kinds of model pass: a pass of one kind after another's finds the heap returned.
    public enum Pass: Sendable {
        case textEncoder, denoiser, autoencoder
    }

    /// What the passes' beginnings and ends decide (`during` makes glibc's calls for them).
    struct Ledger {
        /// Passes running now.
        private(set) var passes = 0
        /// The kind of the pass that began last.
        private(set) var kind: Pass?
        /// Whether glibc keeps freed blocks now (during passes and for `keepSeconds` after).
        private(set) var keeping = false
        /// Counts the ends of the last pass running, so that a return scheduled before a later pass does nothing.
        private(set) var endings = 0

        /// A pass of `kind` begins: whether to return the kept memory first (none running, the last of another kind),
        /// and whether to begin keeping.
        mutating func begin(_ kind: Pass) -> (returnFirst: Bool, keep: Bool) {
            let returnFirst = keeping && passes == 0 && self.kind != kind
            if returnFirst { keeping = false }
            let keep = !keeping
            keeping = true
            self.kind = kind
            passes += 1
            return (returnFirst, keep)
        }

        /// A pass ends: the number of this ending when it was the last pass running, else nil.
        mutating func end() -> Int? {
            passes -= 1
            guard passes == 0 else { return nil }
            endings += 1
            return endings
        }

        /// Whether to return the kept memory now, `keepSeconds` after `ending` (nil: asked now): only while memory is
        /// kept, no pass runs, and none began and ended since.
        mutating func expire(_ ending: Int?) -> Bool {
            guard keeping, passes == 0, ending == nil || ending == endings else { return false }
            keeping = false
            return true
        }
    }

    private static let ledger = Mutex(Ledger())

    /// Runs `body` (a model pass of `kind`) with freed blocks kept in the heap; `keepSeconds` after the last pass ends
    /// (and no other has begun) they go back to the system, or when a pass of another kind begins with none running.
    public static func during<T, E: Error>(_ kind: Pass, _ body: () throws(E) -> T) throws(E) -> T {
        guard isEnabled else { return try body() }
        ledger.withLock { l in
            let (returnFirst, keep) = l.begin(kind)
            if returnFirst { _ = pk_heap_retention(0) }
            if keep { _ = pk_heap_retention(1) }
        }
        defer {
            if let ending = ledger.withLock({ $0.end() }) {
                if keepSeconds == 0 {
                    returnMemory(after: ending)
                } else {
                    DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + keepSeconds) { returnMemory(after: ending) }
                }
            }
        }
        return try body()
    }

    /// Returns the kept memory to the system now unless a pass is running (benchmarks: each pass as the first of a job).
    public static func returnNow() { returnMemory(after: nil) }

    private static func returnMemory(after ending: Int?) {
        ledger.withLock { l in
            if l.expire(ending) { _ = pk_heap_retention(0) }
        }
    }
}
