// PaintsDaemon/DaemonConfiguration: every setting of a running daemon, with documented defaults.
import Foundation
import PaintsProtocol

/// How a daemon is set up. Defaults suit one artist's desk.
public struct DaemonConfiguration: Sendable {
    /// Endpoints to bind (`ipc://...`, or `tcp://` on a loopback address).
    public var endpoints: [String]
    /// Worker threads running jobs.
    public var workers: Int = 1
    /// Jobs that may wait (not counting running ones) before new ones get `queue_full`.
    public var queueCapacity: Int = 32
    /// Largest accepted request, all frames together. Frames over 4x this are cut off by libzmq without a reply.
    public var maxMessageBytes: Int = 256 << 20
    /// Largest accepted image, in pixels (checked from headers before decoding).
    public var maxPixels: Int = 64 << 20
    /// Memory a job may use at its peak, beside the models already resident: a job whose estimate (the engine's
    /// `estimatedPeakBytes`) does not fit is refused with `resource_exhausted` before it runs. Default: three quarters
    /// of the machine's or the cgroup's memory. With several workers each job is checked alone.
    public var memoryBudgetBytes: Int = ProcessMemory.defaultBudget()
    /// Directories under which `{"path": ...}` image references may be read (resolved, symlinks followed).
    public var allowedPaths: [String] = []
    /// How long a finished job's result (and a failed job's error) stays available to `jobs.result`, in seconds.
    public var resultRetention: TimeInterval = 600
    /// Most finished jobs kept at once; the oldest go first.
    public var maxRetainedJobs: Int = 256
    /// ZMTP heartbeat interval and timeout (ms): a peer silent for the timeout counts as gone. A killed local client
    /// is seen at once (the kernel closes its socket); heartbeats catch peers lost on a network, so the timeout is
    /// generous: a client starved of CPU by a running job must not have its jobs cancelled.
    public var heartbeatIntervalMilliseconds: Int32 = 2000
    public var heartbeatTimeoutMilliseconds: Int32 = 20000
    /// What SIGTERM/SIGINT does with unfinished jobs.
    public var shutdownMode: ShutdownParams.Mode = .finish
    /// In `finish` mode, how long to wait for jobs before cancelling what is left.
    public var shutdownGrace: TimeInterval = 30
    /// How often engines' statuses (model files present, resident) are checked again, in seconds; also after each job.
    public var engineCheckInterval: TimeInterval = 2
    /// Largest side of the preview images sent with progress events.
    public var previewMaxSide: Int = 256
    public var version: String = DaemonVersion.current
    /// How the daemon computes (BLAS kernel, threads), reported by `hello`.
    public var compute: [String: JSONValue] = [:]

    public init(endpoints: [String]) {
        self.endpoints = endpoints
    }

    /// The limits `hello` reports.
    public var limitsJSON: JSONValue {
        .object([
            "max_message_bytes": JSONValue(maxMessageBytes), "max_pixels": JSONValue(maxPixels),
            "memory_budget_bytes": JSONValue(memoryBudgetBytes),
            "queue_capacity": JSONValue(queueCapacity), "workers": JSONValue(workers),
            "max_undo_frames": JSONValue(UndoPreviewParams.maxFrames), "result_retention_s": JSONValue(resultRetention),
            "allowed_paths": .array(allowedPaths.map { .string($0) }),
        ].merging(RequestLimits.json) { own, _ in own })
    }
}

public enum DaemonVersion {
    public static let current = "0.1.0"
}
