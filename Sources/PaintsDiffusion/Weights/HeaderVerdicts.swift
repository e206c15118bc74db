// PaintsDiffusion/Weights/HeaderVerdicts: yes/no answers about safetensors headers, kept per file version.
import Foundation
import Glibc
import PaintsTensor
import Synchronization

/// Answers to questions about a weights file's header ("is this an original-layout checkpoint?", "does this UNet carry
/// add_embedding?"), each read once per file version (size and modification time): `hello` lists the models directory
/// and must not parse every header each time.
enum HeaderVerdicts {
    private struct Key: Hashable {
        var question: String
        var path: String
    }

    private struct FileVersion: Equatable {
        var size: Int
        var modified: Date
    }

    private static let known = Mutex<[Key: (version: FileVersion, verdict: Bool)]>([:])

    /// `judge`'s verdict on the header of `path` (false when the file is missing, not a regular file or not
    /// safetensors), asked as `question`; the header is parsed again only when the file changed. The version is the
    /// file's own (symbolic links followed); anything but a regular file (a named pipe would block its reader) is
    /// never opened.
    static func verdict(_ question: String, path: String, _ judge: (SafeTensorsFile) -> Bool) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return false }
        let modified = Date(timeIntervalSince1970: Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9)
        let key = Key(question: question, path: path), version = FileVersion(size: Int(info.st_size), modified: modified)
        if let hit = known.withLock({ $0[key] }), hit.version == version { return hit.verdict }
        let verdict = (try? SafeTensorsFile(path: path)).map(judge) ?? false
        known.withLock { $0[key] = (version, verdict) }
        return verdict
    }
}
