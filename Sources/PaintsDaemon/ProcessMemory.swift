// PaintsDaemon/ProcessMemory: the daemon's own memory use and the machine's memory, read from /proc and /sys, for
// `hello` and the memory budget.
import Foundation

enum ProcessMemory {
    /// Resident and peak resident bytes (VmRSS, VmHWM of /proc/self/status); nil where /proc is not there.
    static func current() -> (resident: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        func kilobytes(_ key: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(key + ":") }) else { return nil }
            return line.split(separator: " ").compactMap { Int($0) }.first
        }
        guard let rss = kilobytes("VmRSS"), let hwm = kilobytes("VmHWM") else { return nil }
        return (rss * 1024, hwm * 1024)
    }

    /// The memory this process may use: the machine's (MemTotal) or its cgroup's limit (cgroup v2 memory.max, v1
    /// memory.limit_in_bytes), whichever is smaller; nil when neither can be read.
    static func available() -> Int? {
        var limits: [Int] = []
        if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
           let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
           let kb = line.split(separator: " ").compactMap({ Int($0) }).first {
            limits.append(kb * 1024)
        }
        for file in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes > 0 {
                limits.append(bytes)
            }
        }
        return limits.min()
    }

    /// The default memory budget: three quarters of `available()`, leaving room for the system, the painting app
    /// beside the daemon, and estimates that fall short; 8 GiB when nothing can be read.
    static func defaultBudget() -> Int { available().map { $0 / 4 * 3 } ?? 8 << 30 }
}
