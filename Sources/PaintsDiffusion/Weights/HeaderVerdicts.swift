// PaintsDiffusion/Weights/HeaderVerdicts: yes/no answers about safetensors headers, kept per file version.
import Foundation
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

    /// `judge`'s verdict on the header of `path` (false when the file is missing or not safetensors), asked as
    /// `question`; the header is parsed again only when the file changed.
    static func verdict(_ question: String, path: String, _ judge: (SafeTensorsFile) -> Bool) -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? Int, let modified = attributes[.modificationDate] as? Date
        else { return false }
        let key = Key(question: question, path: path), version = FileVersion(size: size, modified: modified)
        if let hit = known.withLock({ $0[key] }), hit.version == version { return hit.verdict }
        let verdict = (try? SafeTensorsFile(path: path)).map(judge) ?? false
        known.withLock { $0[key] = (version, verdict) }
        return verdict
    }
}
