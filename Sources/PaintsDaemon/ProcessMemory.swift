// PaintsDaemon/ProcessMemory: the daemon's own memory use, read from /proc, for `hello`.
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
}
