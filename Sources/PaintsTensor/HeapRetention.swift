// PaintsTensor/HeapRetention: keeps freed tensor memory in the process heap for the length of a model pass.
//
// Every tensor operation allocates its output, and a UNet pass at 64x64 frees and allocates blocks of 10-84 MiB
// hundreds of times. glibc maps blocks that large on their own (or trims its heap back to the system), so each one
// comes back as fresh pages: a page fault and a page cleared per 4 KiB, about half a second of a CFG step's batch of two
// on the Zen 4 machine, and a fifth of a VAE pass at 1024x1024. During a pass (`during`: UNet, ControlNet, text encoder
// and VAE passes, nested or on several threads at once) glibc keeps blocks up to 256 MiB in its heap and never trims
// it; when the last pass ends, the freed memory goes back to the system at once, so the daemon's resident size between
// jobs stays as it was. (The VAE's blocks normalize and add in place, so its passes hold fewer blocks at once than
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

    /// Passes running now.
    private static let depth = Mutex(0)

    /// Runs `body` (a model pass) with freed blocks kept in the heap; the last pass to end returns them.
    public static func during<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        guard isEnabled else { return try body() }
        depth.withLock { count in
            if count == 0 { _ = pk_heap_retention(1) }
            count += 1
        }
        defer {
            depth.withLock { count in
                count -= 1
                if count == 0 { _ = pk_heap_retention(0) }
            }
        }
        return try body()
    }
}
