"""paintsd_krita.operations: what the docker's buttons do, without any widget: read layers, send a job to paintsd,
and turn its result into layers. Each operation is driven by `poll()` from a timer (or a socket notifier), so Krita's
UI never waits on the daemon. The tests run these same classes inside Krita (kritarunner)."""
try:
    from . import paintsd_client as pc          # installed: the client copied into the plug-in's package
except ImportError:                              # from the repository: Bridges/python on sys.path
    import paintsd_client as pc

HINT_NAMES = ("hint", "color", "colour", "scribble")


class OperationError(Exception):
    """A problem to show the artist in the docker (never a traceback dialog)."""


def check_document(document):
    """Refuses documents whose pixels the plug-in does not convert: it works on 8-bit RGBA."""
    if document is None:
        raise OperationError("open a document first")
    if document.colorModel() != "RGBA" or document.colorDepth() != "U8":
        raise OperationError(f"paintsd works on 8-bit RGBA documents; this one is {document.colorModel()} "
                             f"{document.colorDepth()} (Image > Convert Image Color Space)")


def work_bounds(document, node):
    """The rectangle the work covers (x, y, width, height): the selection's bounds when there is a selection, else the
    document, in both cases within the canvas."""
    width, height = document.width(), document.height()
    selection = document.selection()
    if selection is not None and selection.width() > 0 and selection.height() > 0:
        x0, y0 = max(0, selection.x()), max(0, selection.y())
        x1, y1 = min(width, selection.x() + selection.width()), min(height, selection.y() + selection.height())
        if x1 > x0 and y1 > y0:
            return x0, y0, x1 - x0, y1 - y0
    return 0, 0, width, height


def bgra_to_rgba(data):
    """Krita's 8-bit pixel order is B,G,R,A; the protocol's rgba8 is R,G,B,A (the same swap both ways)."""
    out = bytearray(data)
    out[0::4], out[2::4] = data[2::4], data[0::4]
    return bytes(out)


rgba_to_bgra = bgra_to_rgba


def read_rgba(node, bounds):
    x, y, w, h = bounds
    return bgra_to_rgba(bytes(node.pixelData(x, y, w, h)))


def looks_like_hints(node):
    """Named like a scribbles layer ("hints", "colors", ...), and not one of our own results ("paintsd ...")."""
    name = node.name()
    return not name.startswith("paintsd ") and any(word in name.lower() for word in HINT_NAMES)


def find_hints_layer(document, sketch):
    """The layer the scribbles are on by default: one named like "hints" or "colors" (not one of our own results, named
    "paintsd ..."), the nearest above the sketch first, else anywhere."""
    # Node wrappers are new Python objects on every call: compare unique ids, not the objects.
    siblings = list(sketch.parentNode().childNodes()) if sketch.parentNode() else []
    named = lambda n: n.uniqueId() != sketch.uniqueId() and looks_like_hints(n)   # noqa: E731
    index = next((i for i, n in enumerate(siblings) if n.uniqueId() == sketch.uniqueId()), None)
    if index is not None:
        for node in siblings[index + 1:]:
            if named(node):
                return node
    for node in document.topLevelNodes():
        if named(node):
            return node
    return None


def insert_below(document, sketch, node):
    """Adds `node` directly under `sketch`, in the same parent. Krita's API only inserts above a node (or at the top):
    under the lowest layer, the node goes above the sketch and the sketch is moved back above it."""
    parent = sketch.parentNode() or document.rootNode()
    siblings = list(parent.childNodes())
    index = next((i for i, n in enumerate(siblings) if n.uniqueId() == sketch.uniqueId()), 0)
    if index > 0:
        parent.addChildNode(node, siblings[index - 1])
    else:
        parent.addChildNode(node, sketch)
        sketch.remove()
        parent.addChildNode(sketch, node)


def insert_above(document, anchor, node):
    parent = anchor.parentNode() or document.rootNode()
    parent.addChildNode(node, anchor)


def add_choices(params, prompt, engine, seed):
    """The artist's choices that the daemon defaults when they are absent: prompt, engine (default engine), seed
    (random when negative)."""
    if prompt:
        params["prompt"] = prompt
    if engine:
        params["engine"] = engine
    if seed is not None and seed >= 0:
        params["seed"] = seed


class Operation:
    """A submitted job and what to do with its result. `poll()` returns the progress events that arrived (so the
    docker can show them) and applies the result once; `done`, `error` and `layers` say how it ended."""

    method = None

    def __init__(self, client, document, params, frames):
        self.client = client
        self.document = document
        self.error = None
        self.layers = []
        self.applied = False
        self.job = client.submit(self.method, params, frames)

    @property
    def done(self):
        return self.job.done

    def poll(self):
        self.client.pump()
        events = [e for e in self.job.pending() if e.type in ("accepted", "progress")]
        if self.job.failure is not None and self.error is None:
            self.error = self.job.failure
        if self.job.result is not None and not self.applied:
            self.applied = True
            self.layers = self.apply(self.job.result)
            self.document.refreshProjection()
        return events

    def wait(self, timeout=600):
        """Polls until the job ends (tests and scripts; the docker polls from a timer instead)."""
        import time
        deadline = time.monotonic() + timeout
        while not self.done and time.monotonic() < deadline:
            self.client.pump(wait=0.2)
        self.poll()
        if not self.done:
            raise OperationError(f"paintsd did not finish within {timeout} s")
        return self

    def cancel(self):
        if not self.done:
            self.job.cancel()

    def apply(self, result):
        raise NotImplementedError


class ColorizeOperation(Operation):
    """Colorize Layer: the sketch (the active layer), scribbles from a hints layer, a reference layer; the colorized
    layer goes under the sketch, named with the engine and seed (above it in Multiply mode when the sketch is opaque,
    as line art scanned or drawn on a white background is)."""

    method = "colorize"

    def __init__(self, client, document, sketch, hints=None, reference=None, prompt="", engine="", seed=None,
                 options=None, reference_file=None):
        check_document(document)
        if sketch is None or sketch.type() not in ("paintlayer", "grouplayer", "filelayer", "vectorlayer"):
            raise OperationError("select the line-art layer first")
        self.sketch = sketch
        self.bounds = work_bounds(document, sketch)
        x, y, w, h = self.bounds
        frames = [read_rgba(sketch, self.bounds)]
        # Line art on an opaque background would hide a layer under it: then the colours go above it, multiplied.
        self.sketch_opaque = frames[0][3::4] == b"\xff" * (w * h)
        params = {"sketch": pc.rgba_frame(1, w, h), "output": "rgba8", "options": dict(options or {})}
        if hints is not None:
            frames.append(read_rgba(hints, self.bounds))
            params["hints"] = pc.rgba_frame(len(frames), w, h)
        if reference is not None:
            whole = (0, 0, document.width(), document.height())
            frames.append(read_rgba(reference, whole))
            params["reference"] = pc.rgba_frame(len(frames), whole[2], whole[3])
        elif reference_file:
            try:
                with open(reference_file, "rb") as f:
                    frames.append(f.read())
            except OSError as error:
                raise OperationError(f"cannot read the reference file: {error.strerror}") from None
            params["reference"] = {"frame": len(frames), "encoding": "png"}
        add_choices(params, prompt, engine, seed)
        super().__init__(client, document, params, frames)

    def apply(self, reply):
        x, y, w, h = self.bounds
        data = reply.image("image")
        if len(data) != w * h * 4:
            raise OperationError(f"paintsd returned {len(data)} bytes for a {w}x{h} layer")
        result = reply.result
        node = self.document.createNode(f"paintsd colorize ({result['engine']}, seed {result['seed']})", "paintlayer")
        node.setPixelData(rgba_to_bgra(data), x, y, w, h)
        if self.sketch_opaque:
            node.setBlendingMode("multiply")
            insert_above(self.document, self.sketch, node)
        else:
            insert_below(self.document, self.sketch, node)
        return [node]


class UndoPreviewOperation(Operation):
    """Undo Preview: what the picture (the active layer) looked like N steps earlier, as a group of layers named by
    step, above the picture. `sequence` asks for the timelapse (blank canvas, keyframes, finished picture)."""

    def __init__(self, client, document, picture, steps=None, count=None, prompt="", engine="", seed=None,
                 options=None, sequence=False):
        check_document(document)
        if picture is None:
            raise OperationError("select the picture's layer first")
        self.method = "undo.sequence" if sequence else "undo.preview"
        self.picture = picture
        self.bounds = work_bounds(document, picture)
        x, y, w, h = self.bounds
        params = {"image": pc.rgba_frame(1, w, h), "output": "rgba8", "options": dict(options or {})}
        if steps:
            params["steps"] = list(steps)
        elif count:
            params["count"] = count
        add_choices(params, prompt, engine, seed)
        super().__init__(client, document, params, [read_rgba(picture, self.bounds)])

    def apply(self, reply):
        x, y, w, h = self.bounds
        result = reply.result
        group = self.document.createGroupLayer(f"paintsd undo preview ({result['engine']}, seed {result['seed']})")
        insert_above(self.document, self.picture, group)
        previous = None
        for frame in result["frames"]:
            data = reply.image(frame["image"])
            if len(data) != w * h * 4:
                continue
            label = frame.get("kind", "step")
            node = self.document.createNode(f"step {frame['step']}" if label in ("step", "keyframe") else label,
                                            "paintlayer")
            node.setPixelData(rgba_to_bgra(data), x, y, w, h)
            group.addChildNode(node, previous)   # each frame above the one before: the last listed ends on top
            previous = node
        return [group]


def parse_steps(text):
    """"400, 600 999" -> [400, 600, 999]; raises OperationError on anything else."""
    steps = []
    for part in text.replace(",", " ").split():
        if not part.isdigit() or not 0 <= int(part) <= 999:
            raise OperationError(f"steps: \"{part}\" is not an integer in 0..999")
        steps.append(int(part))
    return steps
