// PaintsTensor/RegularFile: opening and reading files that came from a models directory without ever blocking on one.
//
// A named pipe (or a device, or a socket) called `x.safetensors` or `config.json` must not stall the daemon: open(2)
// of a FIFO for reading waits for a writer, and reading /dev/zero never ends. Files are opened with O_NONBLOCK (which
// makes opening a FIFO return at once), checked with fstat, and refused unless they are regular files.
import Foundation
import Glibc

public enum RegularFile {
    /// The largest text file (config.json, vocab.json, merges.txt, selected_tags.csv) read whole: 16 MiB. The
    /// published ones are at most a few hundred KiB (CLIP's vocab.json is about 1 MiB).
    public static let maxTextBytes = 16 << 20

    /// Whether `path` is a regular file (symbolic links followed); never opens it.
    public static func isRegular(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// A read-only descriptor of the regular file `path` (close it), and its size. Never blocks: a FIFO, device or
    /// socket is refused as `WeightError.io` without being read.
    public static func open(_ path: String) throws(WeightError) -> (descriptor: Int32, size: Int) {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else { throw .io(path: path, message: String(cString: strerror(errno))) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw .io(path: path, message: message)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .io(path: path, message: "not a regular file (\(kind(info.st_mode)))")
        }
        // Regular files never block; clear O_NONBLOCK anyway so reads behave as usual.
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        return (fd, Int(info.st_size))
    }

    /// The whole regular file `path`, refused past `limit` bytes (a file that grows while read is cut at `limit + 1`
    /// bytes and refused too).
    public static func read(_ path: String, limit: Int = maxTextBytes) throws(WeightError) -> Data {
        let (fd, size) = try open(path)
        defer { close(fd) }
        guard size <= limit else { throw .io(path: path, message: "\(size) bytes, over the limit of \(limit) bytes for this file") }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, message: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
            guard data.count <= limit else { throw .io(path: path, message: "over the limit of \(limit) bytes for this file") }
        }
        return data
    }

    /// The regular file `path` as a JSON object, or nil when it is missing, not a regular file, too large or not a
    /// JSON object.
    public static func jsonObject(_ path: String, limit: Int = maxTextBytes) -> [String: Any]? {
        guard let data = try? read(path, limit: limit) else { return nil }
        return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
    }

    /// The regular file `path` as UTF-8 text, or nil (missing, not a regular file, too large, not UTF-8).
    public static func text(_ path: String, limit: Int = maxTextBytes) -> String? {
        guard let data = try? read(path, limit: limit) else { return nil }
        return String(data: data, encoding: .utf8)
    }

    private static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: "a named pipe"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        case S_IFSOCK: "a socket"
        case S_IFDIR: "a directory"
        default: "mode \(String(mode, radix: 8))"
        }
    }
}
