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
    """The layer's pixels over `bounds` as R,G,B,A; a group (or any layer without pixels of its own) as it shows."""
    x, y, w, h = bounds
    data = bytes(node.pixelData(x, y, w, h))
    if len(data) != w * h * 4:
        data = bytes(node.projectionPixelData(x, y, w, h))
    if len(data) != w * h * 4:
        raise OperationError(f"the layer \"{node.name()}\" has no pixels to read: select a paint layer")
    return bgra_to_rgba(data)


def looks_like_hints(node):
    """Named like a scribbles layer ("hints", "colors", ...), and not one of our own results ("paintsd ...",
    "color · builtin seed 3")."""
    name = node.name()
    return (not name.startswith("paintsd ") and not (" · " in name and " seed " in name)
            and any(word in name.lower() for word in HINT_NAMES))


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


def same_node(a, b):
    return a is not None and b is not None and a.uniqueId() == b.uniqueId()


def siblings_of(document, node):
    parent = node.parentNode() or document.rootNode()
    return parent, list(parent.childNodes())


def previous_result(document, anchor, named, above):
    """Our earlier result of this kind for `anchor`: a layer whose name passes `named` (a test, or a prefix such as
    "paintsd undo preview") right above it (`above`) or right below it, where the plug-in puts its results for that
    layer; not the result of a neighbouring layer, which sits on that one's side. An artist who renamed it keeps it."""
    _, siblings = siblings_of(document, anchor)
    index = next((i for i, n in enumerate(siblings) if same_node(n, anchor)), None)
    i = None if index is None else index + 1 if above else index - 1
    test = named if callable(named) else (lambda name: name.startswith(named))
    if i is not None and 0 <= i < len(siblings) and test(siblings[i].name()):
        return siblings[i]
    return None


def is_empty(data):
    """Whether 8-bit RGBA or BGRA pixels are all fully transparent."""
    return bytes(data[3::4]).count(0) == len(data) // 4


def keep_active(document, node, added):
    """Krita makes a layer it adds the active one, a moment later (from its event loop, so setting it back at once
    does not stick): the artist's layer (the line art) is made active again now and from the event loop, unless the
    artist picked another one in between. Needs a view of the document (does nothing in a script without one)."""
    def restore():
        try:
            active = document.activeNode()
            if active is None or any(same_node(active, n) for n in added):
                document.setActiveNode(node)
        except Exception:  # noqa: BLE001 - a convenience: never an error over it (the document may be closed)
            pass
    try:
        document.setActiveNode(node)
    except Exception:  # noqa: BLE001
        pass
    try:
        from PyQt5.QtCore import QTimer
    except ImportError:
        return
    for delay in (0, 100):
        QTimer.singleShot(delay, restore)


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
    docker can show them) and applies the result once; `done`, `error`, `warning` and `layers` say how it ended."""

    method = None

    def __init__(self, client, document, params, frames):
        self.client = client
        self.document = document
        self.error = None
        self.layers = []
        self.warning = None        # the daemon's result.info.warning, to show beside the result
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
            self.warning = (self.job.result.result.get("info") or {}).get("warning")
            try:
                self.layers = self.apply(self.job.result)
            except OperationError as error:      # e.g. nothing coloured: said instead of adding an empty layer
                self.error = error
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


COLORIZE_PREFIX = "paintsd colorize"
UNDO_PREFIX = "paintsd undo preview"
NOTHING_TO_COLOUR = ("nothing to colour from: paint colour scribbles on a layer and pick it as the Hints layer, "
                     "or choose a Reference")


def result_title(result):
    """What made a colorize result, for its layers' names: "sd anything-v5 seed 42", "builtin seed 3"."""
    model = (result.get("info") or {}).get("model")
    return f"{result.get('engine', '?')}{' ' + str(model) if model else ''} seed {result.get('seed', '?')}"


def layer_name(layer, result):
    """A result layer's name in the document: "color · sd anything-v5 seed 42"."""
    return f"{layer} · {result_title(result)}"


def is_colorize_result(name):
    """Named as a colorize result: a layer ("color · builtin seed 3"), a group of layers ("paintsd colorize · ..."),
    or a layer of an earlier version of the plug-in ("paintsd colorize (builtin, seed 3)")."""
    return name.startswith(COLORIZE_PREFIX) or (" · " in name and " seed " in name)


class ColorizeOperation(Operation):
    """Colorize Layer: the sketch (the active layer), scribbles from a hints layer, a reference layer. The result's
    layers (top first: `color`, then e.g. `flats`, hidden) go under the sketch in that order, each named with the
    engine, model and seed ("color · sd anything-v5 seed 42"), hidden where the daemon says so; above it in Multiply
    mode when the sketch is opaque and in Normal mode, as line art scanned or drawn on a white background is. One
    layer is added as it is; several go in one group ("paintsd colorize · ..."), because Krita's Python API records
    each added node as an undo step of its own and has no undo macro: a group built outside the document and added
    in one call is one undo step. (Setting Multiply is a step of its own too, which Krita records first: the first
    Ctrl+Z takes the result away, a second one undoes nothing visible. The sketch is left as the artist has it.)
    A result without `layers` (an older daemon) gives one layer, its `image`. With `replace`, the previous colorize
    result of this sketch (right above or below it) gives way to the new one. The sketch stays the active layer.

    `engine_inputs` (from the daemon's hello: what the chosen engine reads) says whether a prompt alone is something
    to colour from; without hints (with a scribble in the work area), reference or such a prompt, nothing is sent."""

    method = "colorize"

    def __init__(self, client, document, sketch, hints=None, reference=None, prompt="", engine="", seed=None,
                 options=None, reference_file=None, replace=True, engine_inputs=None):
        check_document(document)
        if sketch is None or sketch.type() not in ("paintlayer", "grouplayer", "filelayer", "vectorlayer"):
            raise OperationError("select the line-art layer first")
        if same_node(hints, sketch):
            raise OperationError("the Hints layer is the line art itself: pick the layer with the colour scribbles")
        self.sketch = sketch
        self.replace = replace
        self.bounds = work_bounds(document, sketch)
        x, y, w, h = self.bounds
        frames = [read_rgba(sketch, self.bounds)]
        # Line art on an opaque background would hide a layer under it: then the colours go above it, multiplied.
        # Line art the artist already set to another mode (Multiply, Darken...) lets what is under it show.
        self.sketch_opaque = frames[0][3::4] == b"\xff" * (w * h) and sketch.blendingMode() == "normal"
        params = {"sketch": pc.rgba_frame(1, w, h), "output": "rgba8", "options": dict(options or {})}
        hint_pixels = read_rgba(hints, self.bounds) if hints is not None else None
        if hint_pixels is not None and is_empty(hint_pixels):
            hint_pixels = None            # an empty hints layer (or none of its scribbles in the selection)
            if reference is None and not reference_file:
                raise OperationError(f"the Hints layer \"{hints.name()}\" has no scribbles here: " + NOTHING_TO_COLOUR)
        takes_prompt = engine_inputs is None or "prompt" in engine_inputs
        if hint_pixels is None and reference is None and not reference_file and not (prompt and takes_prompt):
            raise OperationError(NOTHING_TO_COLOUR)
        if hint_pixels is not None:
            frames.append(hint_pixels)
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
        result = reply.result
        layers = reply.layers()
        if not layers:
            raise OperationError("paintsd returned no layer")
        for layer in layers:
            if len(layer.data) != w * h * 4:
                raise OperationError(f"paintsd returned {len(layer.data)} bytes for the {w}x{h} layer "
                                     f"\"{layer.name}\"")
        if all(is_empty(layer.data) for layer in [layer for layer in layers if layer.visible] or layers):
            raise OperationError("paintsd coloured nothing, so no layer was added: "
                                 + (self.warning or NOTHING_TO_COLOUR))
        nodes = []
        for layer in layers:
            node = self.document.createNode(layer_name(layer.name, result), "paintlayer")
            node.setPixelData(rgba_to_bgra(layer.data), x, y, w, h)
            node.setVisible(layer.visible)
            nodes.append(node)
        if len(nodes) == 1:
            node = nodes[0]
        else:
            node = self.document.createGroupLayer(f"{COLORIZE_PREFIX} · {result_title(result)}")
            # Bottom to top; setChildNodes on a group outside the document records no undo step (see UndoPreview).
            node.setChildNodes(list(reversed(nodes)))
        if self.sketch_opaque:
            node.setBlendingMode("multiply")
        old = (previous_result(self.document, self.sketch, is_colorize_result, above=self.sketch_opaque)
               if self.replace else None)
        placed = False
        if old is not None:
            node.setOpacity(old.opacity())
            parent, siblings = siblings_of(self.document, old)
            if not self.sketch_opaque and same_node(siblings[0], old):
                # The old result is the lowest layer: the new one takes its place, so the sketch need not move.
                parent.addChildNode(node, old)
                placed = True
            old.remove()     # before adding when possible: an undo then never shows doubled (darker) colours
        if placed:
            pass
        elif self.sketch_opaque:
            insert_above(self.document, self.sketch, node)
        else:
            insert_below(self.document, self.sketch, node)
        keep_active(self.document, self.sketch, [node] + nodes)
        return [node]


def frame_name(frame):
    kind = frame.get("kind", "step")
    return f"step {frame['step']}" if kind in ("step", "keyframe") else kind


class UndoPreviewOperation(Operation):
    """Undo Preview: what the picture (the active layer) looked like N steps earlier, as a group of layers named by
    step, above the picture. The frame nearest the finished picture (the lowest step) is on top and the only one
    shown; the others, hidden, go down to the highest step (the start of the drawing) at the bottom, as in GIMP.
    The group is built before it enters the document and is added in one call: the whole result is one undo step.
    With `replace`, a previous preview group right above the picture gives way to it. The picture stays the active
    layer. `sequence` asks for the timelapse (blank canvas, keyframes, finished picture)."""

    def __init__(self, client, document, picture, steps=None, count=None, prompt="", engine="", seed=None,
                 options=None, sequence=False, replace=True):
        check_document(document)
        if picture is None:
            raise OperationError("select the picture's layer first")
        self.method = "undo.sequence" if sequence else "undo.preview"
        self.picture = picture
        self.replace = replace
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
        group = self.document.createGroupLayer(f"{UNDO_PREFIX} ({result['engine']}, seed {result['seed']})")
        frames = [f for f in result["frames"] if len(reply.image(f["image"])) == w * h * 4]
        if not frames:
            raise OperationError("paintsd returned no frames of the layer's size")
        # Bottom to top: the highest step first, the one nearest the finished picture last.
        frames.sort(key=lambda f: -f["step"])
        nodes = []
        for i, frame in enumerate(frames):
            node = self.document.createNode(frame_name(frame), "paintlayer")
            node.setPixelData(rgba_to_bgra(reply.image(frame["image"])), x, y, w, h)
            node.setVisible(i == len(frames) - 1)
            nodes.append(node)
        # setChildNodes on a group outside the document records no undo step; addChildNode below records one, for
        # the group with all its frames (Krita's Python API has no undo macro).
        group.setChildNodes(nodes)
        old = previous_result(self.document, self.picture, UNDO_PREFIX, above=True) if self.replace else None
        if old is not None:
            old.remove()
        insert_above(self.document, self.picture, group)
        keep_active(self.document, self.picture, [group] + nodes)
        return [group]


def parse_steps(text):
    """"400, 600 999" -> [400, 600, 999]; raises OperationError on anything else."""
    steps = []
    for part in text.replace(",", " ").split():
        if not part.isdigit() or not 0 <= int(part) <= 999:
            raise OperationError(f"steps: \"{part}\" is not an integer in 0..999")
        steps.append(int(part))
    return steps
