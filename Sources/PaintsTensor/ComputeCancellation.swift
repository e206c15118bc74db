// PaintsTensor/ComputeCancellation: lets a long computation stop early when whoever started it no longer wants it.
//
// Swift's own Task cancellation, for code that runs on plain threads: a job's worker binds a check for the duration of
// the job, and long operations (convolution tiles, UNet and VAE blocks, the built-in engines' row loops) poll it and
// throw. The check is bound with a task-local value, which outside a task lives in thread-local storage, so it is
// seen only on the thread that bound it and costs one load per poll.

public enum ComputeCancellation {
    /// Whether the computation on this thread should stop; nil when nothing bound a check (tests, tools).
    @TaskLocal public static var check: (@Sendable () -> Bool)?

    /// True once the bound check says stop.
    @inlinable public static var isRequested: Bool { check?() ?? false }

    /// Throws `TensorError.cancelled` once the bound check says stop.
    @inlinable public static func checkpoint() throws(TensorError) {
        if isRequested { throw .cancelled }
    }

    /// Runs `body` with `isCancelled` as this thread's check.
    public static func run<T, E: Error>(whileNot isCancelled: @escaping @Sendable () -> Bool,
                                        _ body: () throws(E) -> T) throws(E) -> T {
        let outcome: Result<T, E> = $check.withValue(isCancelled) {
            do throws(E) { return .success(try body()) } catch { return .failure(error) }
        }
        return try outcome.get()
    }
}
