"""paintsd_client: a small client of the paintsd daemon (JSON over ZeroMQ, Protocol/PROTOCOL.md).

Needs pyzmq alone (Debian: python3-zmq); runs on /usr/bin/python3 and inside Krita's Python. One DEALER socket carries
any number of requests; replies are routed to their request by id, so a GUI can poll without blocking:

    client = Client()                      # $PAINTSD_ENDPOINT, else the per-user socket paintsd listens on
    info = client.hello()                  # engines, their options, defaults, limits
    job = client.submit("colorize", {"sketch": png_frame(1), "hints": png_frame(2)}, frames=[sketch, hints])
    for event in job.events():             # accepted / progress, until the result (errors raise PaintsdError)
        print(event.progress)
    open("out.png", "wb").write(job.result.image("image"))
    for layer in job.result.layers():      # a colorize result as layers, top first: name, visible, data, reference
        print(layer.name, layer.visible, len(layer.data))

In an event loop, call `client.pump()` when `client.fileno()` is readable (or from a timer) and read `job.pending()`.
The descriptor is edge-triggered: `pump()` drains every waiting message.
"""
import collections
import json
import os
import time
import uuid

import zmq

PROTOCOL = 1


class PaintsdError(Exception):
    """An error reply, or a failure to reach the daemon. `code` is the protocol's error code."""

    def __init__(self, code, message, details=None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class DaemonNotRunning(PaintsdError):
    def __init__(self, endpoint):
        super().__init__("daemon_not_running", f"no paintsd answers at {endpoint}; start one with `paintsd`",
                         {"endpoint": endpoint})


class Timeout(PaintsdError):
    def __init__(self, seconds, what):
        super().__init__("timeout", f"no reply to {what} within {seconds:g} s", {"seconds": seconds})


def default_endpoint():
    """$PAINTSD_ENDPOINT, else ipc://$XDG_RUNTIME_DIR/paintsd/paintsd.sock (or /tmp/paintsd-UID/... without it)."""
    if os.environ.get("PAINTSD_ENDPOINT"):
        return os.environ["PAINTSD_ENDPOINT"]
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    directory = f"{runtime}/paintsd" if runtime else f"/tmp/paintsd-{os.getuid()}"
    return f"ipc://{directory}/paintsd.sock"


def png_frame(index):
    """An image reference to PNG bytes in frame `index`."""
    return {"frame": index, "encoding": "png"}


def rgba_frame(index, width, height):
    """An image reference to raw 8-bit RGBA rows (width * height * 4 bytes) in frame `index`."""
    return {"frame": index, "encoding": "rgba8", "width": width, "height": height}


Layer = collections.namedtuple("Layer", "name visible data reference")
Layer.__doc__ = """One layer of a colorize result: its name ("color", "flats"...), whether it is shown, its frame's
bytes (PNG, or raw 8-bit RGBA rows when the request asked for "rgba8") and its image reference (encoding, width,
height)."""


class Reply:
    """One reply message: its JSON header and the binary frames after it."""

    def __init__(self, frames):
        self.header = json.loads(frames[0])
        self.frames = frames

    type = property(lambda self: self.header.get("type"))
    id = property(lambda self: self.header.get("id"))
    job = property(lambda self: self.header.get("job"))
    result = property(lambda self: self.header.get("result", {}))
    progress = property(lambda self: self.header.get("progress"))

    def image(self, reference):
        """The bytes an image reference (or the name of one in the result) points at."""
        if isinstance(reference, str):
            reference = self.result[reference]
        return self.frames[reference["frame"]]

    def layers(self):
        """A colorize result as layers, top first, to go under the line art in that order: `Layer`s with the name,
        visibility, frame bytes and image reference of each entry of the result's "layers". A result without "layers"
        (from a daemon older than layered results) gives one visible "color" layer: its "image"."""
        entries = self.result.get("layers")
        if entries is None:
            reference = self.result.get("image")
            return [Layer("color", True, self.image(reference), reference)] if reference else []
        return [Layer(e["name"], bool(e.get("visible", True)), self.image(e["image"]), e["image"]) for e in entries]

    def preview(self):
        """A progress event's preview PNG, or None."""
        reference = self.header.get("preview")
        return self.frames[reference["frame"]] if reference else None

    def error(self):
        e = self.header.get("error") or {}
        return PaintsdError(e.get("code", "internal"), e.get("message", "unknown error"), e.get("details"))


class Job:
    """A request that creates a daemon job: its events as they arrive, its result, and cancel."""

    def __init__(self, client, request_id, method):
        self.client = client
        self.id = request_id
        self.method = method
        self.job = None            # the daemon's job id, once accepted
        self.engine = None
        self.seed = None
        self.result = None         # the final Reply when done
        self.failure = None        # PaintsdError when it failed or was cancelled
        self._queue = []

    @property
    def done(self):
        return self.result is not None or self.failure is not None

    def _deliver(self, reply):
        if reply.type == "accepted":
            self.job, self.engine, self.seed = reply.job, reply.header.get("engine"), reply.header.get("seed")
        elif reply.type == "result":
            self.result = reply
        elif reply.type == "error":
            self.failure = reply.error()
        self._queue.append(reply)

    def pending(self):
        """Replies that arrived since the last call (after `client.pump()`), oldest first; never blocks."""
        out, self._queue = self._queue, []
        return out

    def events(self, timeout=None):
        """Yields accepted and progress replies until the job ends; then returns, or raises its error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for reply in self.pending():
                if reply.type in ("accepted", "progress"):
                    yield reply
            if self.failure is not None:
                raise self.failure
            if self.result is not None:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise Timeout(timeout, self.method)
            self.client.pump(wait=min(left, 1.0) if left is not None else 1.0)

    def wait(self, timeout=None):
        """The result reply (raises the job's error, or Timeout)."""
        for _ in self.events(timeout):
            pass
        return self.result

    def cancel(self, timeout=10.0):
        """Asks the daemon to cancel the job (queued: dropped at once; running: stops at its next step)."""
        if self.done:
            return None
        if self.job is None:
            self.client.wait_for(lambda: self.job is not None or self.done, timeout, "accepted")
        if self.done:
            return None
        return self.client.call("jobs.cancel", {"job": self.job}, timeout=timeout)


class Client:
    def __init__(self, endpoint=None, timeout=30.0, context=None):
        self.endpoint = endpoint or default_endpoint()
        self.timeout = timeout
        self.socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        # Heartbeats let the daemon see a client that died without closing its socket (TCP endpoints).
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.socket.setsockopt(zmq.IPV6, 1)  # reaches tcp://[::1]:PORT too
        self.socket.connect(self.endpoint)
        self._waiting = {}         # request id -> Job or one-shot list

    def close(self):
        self.socket.close(0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self):
        """The socket's descriptor for QSocketNotifier/select (edge-triggered: call pump() until it returns 0)."""
        return self.socket.getsockopt(zmq.FD)

    def _check_endpoint(self):
        if self.endpoint.startswith("ipc://") and not self.endpoint.startswith("ipc://@") \
                and not os.path.exists(self.endpoint[len("ipc://"):]):
            raise DaemonNotRunning(self.endpoint)

    def _send(self, method, params, frames, stream, on_disconnect=None):
        self._check_endpoint()
        request_id = uuid.uuid4().hex
        header = {"protocol": PROTOCOL, "id": request_id, "method": method, "params": params or {}}
        if stream:
            header["stream"] = True
        if on_disconnect:
            header["on_disconnect"] = on_disconnect
        self.socket.send_multipart([json.dumps(header).encode()] + [bytes(f) for f in frames])
        return request_id

    def pump(self, wait=0.0):
        """Reads every waiting reply and routes it to its request; waits up to `wait` seconds for the first.
        Returns the number of replies read."""
        count = 0
        if wait and not self.socket.poll(int(wait * 1000), zmq.POLLIN):
            return 0
        while True:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return count
            count += 1
            reply = Reply(frames)
            target = self._waiting.get(reply.id)
            if isinstance(target, Job):
                target._deliver(reply)
                if target.done:
                    del self._waiting[reply.id]
            elif isinstance(target, list):
                target.append(reply)

    def wait_for(self, condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                raise Timeout(timeout, what)
            self.pump(wait=min(left, 0.5))

    def call(self, method, params=None, frames=(), timeout=None):
        """A method answered by one reply (hello, ping, engines.list, jobs.*): returns its result dict."""
        timeout = self.timeout if timeout is None else timeout
        request_id = self._send(method, params, frames, stream=False)
        box = []
        self._waiting[request_id] = box
        try:
            self.wait_for(lambda: box, timeout, method)
        except Timeout:
            if method in ("hello", "ping"):
                raise DaemonNotRunning(self.endpoint) from None
            raise
        finally:
            self._waiting.pop(request_id, None)
        reply = box[0]
        if reply.type == "error":
            raise reply.error()
        return reply.result

    def hello(self, timeout=5.0):
        return self.call("hello", timeout=timeout)

    def submit(self, method, params, frames=(), stream=True, on_disconnect=None):
        """Starts a job (colorize, undo.preview, undo.sequence, tag); frames are the binary images, frame 1 first."""
        request_id = self._send(method, params, frames, stream, on_disconnect)
        job = Job(self, request_id, method)
        self._waiting[request_id] = job
        return job

    def run(self, method, params, frames=(), timeout=None, on_progress=None):
        """submit + wait, calling on_progress(reply) for each progress event."""
        job = self.submit(method, params, frames, stream=on_progress is not None)
        for event in job.events(timeout):
            if on_progress and event.type == "progress":
                on_progress(event)
        return job.result
