// PaintsProtocol/DefaultEndpoint: where the daemon listens when nobody says otherwise; daemon and clients share it.
import Foundation
import Glibc

public enum DefaultEndpoint {
    /// The per-user runtime directory: `$XDG_RUNTIME_DIR/paintsd`, else `/tmp/paintsd-<uid>`.
    public static func runtimeDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let xdg = environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/paintsd" }
        return "/tmp/paintsd-\(getuid())"
    }

    /// The ipc endpoint of the socket in `directory`.
    public static func endpoint(inDirectory directory: String) -> String { "ipc://" + directory + "/paintsd.sock" }

    /// `$PAINTSD_ENDPOINT`, else the socket in the runtime directory.
    public static func endpoint(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let explicit = environment["PAINTSD_ENDPOINT"], !explicit.isEmpty { return explicit }
        return endpoint(inDirectory: runtimeDirectory(environment: environment))
    }
}
