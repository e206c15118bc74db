"""Runs inside Krita (kritarunner, under Xvfb): the plug-in's own colorize and undo-preview code paths
(paintsd_krita.operations) against a real paintsd, on a document opened from the sample art; exports and checks the
pixels. Then the docker itself (paintsd_krita.docker) in a Krita window: started with no daemon at its endpoint, it
says so, survives a press of Colorize, and connects by itself once a daemon (PAINTSD_BIN) starts there; its layer
lists follow the document; Colorize adds nothing when there is nothing to colour from, replaces its previous result
on a re-run and keeps the line art active; an Undo Preview group is one undo step with the frame nearest the finished
picture on top. kritarunner exits 0 even when a script fails, so every check goes into a JSON report file that
Tests/bridges/krita.sh reads.

    kritarunner -s krita_test REPORT.json ART_DIR OUT_DIR [PAINTSD_BIN LATE_RUNTIME_DIR]
"""
import json
import os
import subprocess
import sys
import time
import traceback


def colour_match(result, original, pixel_count):
    """Fraction of the result's opaque pixels, away from the ink, that carry the original's colour (B,G,R,A bytes)."""
    considered = close = 0
    for i in range(0, pixel_count * 4, 4):
        if result[i + 3] > 128 and original[i] + original[i + 1] + original[i + 2] > 300:
            considered += 1
            if sum(abs(result[i + k] - original[i + k]) for k in range(3)) <= 60:
                close += 1
    return considered, close / max(1, considered)


def main(report_path, art, out):
    from krita import Krita
    import paintsd_client as pc
    from paintsd_krita import operations as ops

    checks = {}
    app = Krita.instance()
    app.setBatchmode(True)
    client = pc.Client()
    checks["hello"] = bool(client.hello()["engines"])

    doc = app.openDocument(os.path.join(art, "umbrella-lineart.png"))
    doc.setBatchmode(True)
    w, h = doc.width(), doc.height()
    sketch = doc.topLevelNodes()[0]
    # The scribbles as a layer named "hints" above the line art, as an artist would have them.
    hints_doc = app.openDocument(os.path.join(art, "umbrella-hints.png"))
    hints = doc.createNode("hints", "paintlayer")
    hints.setPixelData(hints_doc.topLevelNodes()[0].pixelData(0, 0, w, h), 0, 0, w, h)
    doc.rootNode().addChildNode(hints, sketch)
    hints_doc.close()
    checks["hints_layer_found"] = ops.find_hints_layer(doc, sketch).name() == "hints"

    op = ops.ColorizeOperation(client, doc, sketch, hints=ops.find_hints_layer(doc, sketch), seed=3).wait(120)
    checks["colorize_no_error"] = op.error is None
    layer = op.layers[0] if op.layers else None
    # The builtin engine's one `color` layer, added as a layer (no group), named with its name, engine and seed.
    checks["colorize_layer_named"] = layer is not None and layer.name() == "color · builtin seed 3"
    checks["colorize_one_layer_no_group"] = layer is not None and layer.type() == "paintlayer" and layer.visible()
    children = [n.name() for n in doc.rootNode().childNodes()]
    # The sample line art is opaque (black on white): the colours go above it, multiplied, so both show.
    checks["colorize_layer_multiplied_above_opaque_sketch"] = (
        children[:2] == [sketch.name(), "color · builtin seed 3"] and layer.blendingMode() == "multiply")
    checks["layers"] = children
    checks["own_results_are_not_hints"] = ops.find_hints_layer(doc, sketch).name() == "hints"
    colored_doc = app.openDocument(os.path.join(art, "umbrella-colored.png"))
    original = bytes(colored_doc.topLevelNodes()[0].pixelData(0, 0, w, h))
    colored_doc.close()
    considered, fraction = colour_match(bytes(layer.pixelData(0, 0, w, h)), original, w * h) if layer else (0, 0)
    checks["colorize_colours_in_regions"] = considered > w * h // 10 and fraction >= 0.9
    checks["colorize_measured"] = {"considered": considered, "fraction": round(fraction, 4)}
    doc.exportImage(os.path.join(out, "colorized.png"), __import__("krita").InfoObject())

    # Line art on a transparent layer: the colours go under it, in Normal mode.
    lines = doc.createNode("lines", "paintlayer")
    ink = bytearray(sketch.pixelData(0, 0, w, h))
    for i in range(0, len(ink), 4):
        ink[i + 3] = 255 - min(ink[i], ink[i + 1], ink[i + 2])      # white -> transparent, black -> opaque ink
    lines.setPixelData(bytes(ink), 0, 0, w, h)
    doc.rootNode().addChildNode(lines, None)
    under = ops.ColorizeOperation(client, doc, lines, hints=hints, seed=4).wait(120)
    order = [n.name() for n in doc.rootNode().childNodes()]
    checks["colorize_layer_under_transparent_sketch"] = (
        order[-2:] == ["color · builtin seed 4", "lines"] and under.layers[0].blendingMode() == "normal")

    # A reference picture from a file, no scribbles: the result takes the reference's palette.
    from_file = ops.ColorizeOperation(client, doc, lines, reference_file=os.path.join(art, "umbrella-colored.png"),
                                      seed=5).wait(120)
    checks["reference_file_used"] = from_file.error is None and len(from_file.layers) == 1
    # A re-run replaces the previous result beside the same line art instead of stacking a second one.
    order = [n.name() for n in doc.rootNode().childNodes()]
    checks["colorize_rerun_replaces"] = (order[-2:] == ["color · builtin seed 5", "lines"]
                                         and sum(ops.is_colorize_result(name) for name in order) == 2)
    checks["layers_after_rerun"] = order
    # Nothing to colour from (no hints, no reference): said, and nothing sent or added.
    try:
        ops.ColorizeOperation(client, doc, lines, seed=6)
        checks["nothing_to_colour_refused"] = False
    except ops.OperationError as error:
        checks["nothing_to_colour_refused"] = "nothing to colour from" in str(error)
    empty = doc.createNode("empty hints", "paintlayer")
    try:
        ops.ColorizeOperation(client, doc, lines, hints=empty, seed=6)
        checks["empty_hints_refused"] = False
    except ops.OperationError as error:
        checks["empty_hints_refused"] = "no scribbles" in str(error)
    checks["nothing_added_when_refused"] = [n.name() for n in doc.rootNode().childNodes()] == order
    # A scribble that colours nothing (one pixel on the ink, which the fill ignores): said, and no empty layer added.
    ink_at = next(i for i in range(3, len(ink), 4) if ink[i] == 255) // 4
    dot = bytearray(w * h * 4)
    dot[ink_at * 4:ink_at * 4 + 4] = b"\x00\x00\xff\xff"
    empty.setPixelData(bytes(dot), 0, 0, w, h)
    nothing = ops.ColorizeOperation(client, doc, lines, hints=empty, seed=6).wait(120)
    checks["nothing_coloured_adds_nothing"] = (isinstance(nothing.error, ops.OperationError)
                                               and "coloured nothing" in str(nothing.error) and not nothing.layers
                                               and [n.name() for n in doc.rootNode().childNodes()] == order)
    checks["nothing_coloured_says"] = str(nothing.error)
    try:
        ops.ColorizeOperation(client, doc, lines, reference_file=os.path.join(out, "missing.png"))
        checks["missing_reference_file_refused"] = False
    except ops.OperationError as error:
        checks["missing_reference_file_refused"] = "reference file" in str(error)

    # A layered result as the sd engine gives it (`color` shown, `flats` hidden), canned: this daemon has no sd models.
    # Under the transparent line art: one group right under it, its layers top first as the result lists them.
    canned = CannedClient(w, h)
    two = ops.ColorizeOperation(canned, doc, lines, hints=hints, engine="sd", seed=42).wait(10)
    order = [n.name() for n in doc.rootNode().childNodes()]
    group = two.layers[0] if two.layers else None
    inside = [(n.name(), n.visible(), n.type()) for n in group.childNodes()][::-1] if group is not None else []
    checks["layers_no_error"] = two.error is None
    checks["layers_group_under_line_art"] = (
        order[-2:] == ["paintsd colorize · sd anything-v5 seed 42", "lines"] and group.type() == "grouplayer"
        and group.blendingMode() == "normal")
    checks["layers_in_order_flats_hidden"] = inside == [("color · sd anything-v5 seed 42", True, "paintlayer"),
                                                        ("flats · sd anything-v5 seed 42", False, "paintlayer")]
    checks["layers_inside"] = inside
    # The canned pixels (R,G,B,A) reach their layers: color (200, 40, 30) on the left half, transparent on the right.
    color = next((n for n in group.childNodes() if n.name().startswith("color")), None) if group else None
    flats = next((n for n in group.childNodes() if n.name().startswith("flats")), None) if group else None
    checks["layers_pixels"] = (color is not None and flats is not None
                               and bytes(color.pixelData(1, 1, 1, 1)) == bytes([30, 40, 200, 255])
                               and bytes(color.pixelData(w - 2, 1, 1, 1))[3] == 0
                               and bytes(flats.pixelData(w - 2, 1, 1, 1)) == bytes([220, 60, 30, 255]))
    # The options and the sd engine went into the request.
    checks["layers_request_engine"] = canned.sent.get("engine") == "sd"
    # A re-run replaces the previous result (the builtin layer of seed 5 before, this group now).
    checks["layers_replaced_previous"] = sum(ops.is_colorize_result(name) for name in order) == 2
    # Above the opaque sketch: the group in Multiply mode.
    over = ops.ColorizeOperation(CannedClient(w, h), doc, sketch, hints=hints, engine="sd", seed=43).wait(10)
    order = [n.name() for n in doc.rootNode().childNodes()]
    checks["layers_group_multiplied_above_opaque_sketch"] = (
        over.error is None and order[:2] == [sketch.name(), "paintsd colorize · sd anything-v5 seed 43"]
        and over.layers[0].blendingMode() == "multiply")
    # An older daemon's result (no `layers`): one layer from `image`, as before.
    old = ops.ColorizeOperation(CannedClient(w, h, layered=False), doc, lines, hints=hints, seed=44).wait(10)
    order = [n.name() for n in doc.rootNode().childNodes()]
    checks["no_layers_falls_back_to_image"] = (
        old.error is None and order[-2:] == ["color · sd anything-v5 seed 44", "lines"]
        and old.layers[0].type() == "paintlayer")
    checks["layers_after_canned"] = order
    # Opaque line art the artist set to Multiply lets what is under it show: the result goes under it, in Normal mode.
    sketch.setBlendingMode("multiply")
    mult = ops.ColorizeOperation(CannedClient(w, h), doc, sketch, hints=hints, engine="sd", seed=45,
                                 replace=False).wait(10)
    order = [n.name() for n in doc.rootNode().childNodes()]
    checks["layers_under_multiply_sketch"] = (
        mult.error is None and order[:2] == ["paintsd colorize · sd anything-v5 seed 45", sketch.name()]
        and mult.layers[0].blendingMode() == "normal")
    sketch.setBlendingMode("normal")

    # Undo previews of the finished picture, with a selection limiting the work to its bounds.
    picture_doc = app.openDocument(os.path.join(art, "blocks-colored.png"))
    picture_doc.setBatchmode(True)
    picture = picture_doc.topLevelNodes()[0]
    selection = __import__("krita").Selection()
    selection.select(32, 16, 256, 192, 255)
    picture_doc.setSelection(selection)
    undo = ops.UndoPreviewOperation(client, picture_doc, picture, steps=[999, 500], seed=4).wait(120)
    checks["undo_no_error"] = undo.error is None
    group = undo.layers[0] if undo.layers else None
    frames = group.childNodes() if group is not None else []
    checks["undo_group"] = group is not None and group.type() == "grouplayer" and len(frames) == 2
    checks["undo_frames_named_by_step"] = sorted(n.name() for n in frames) == ["step 500", "step 999"]
    # One order in Krita and GIMP: the frame nearest the finished picture on top and shown, the others hidden below.
    checks["undo_nearest_finished_on_top"] = [(n.name(), n.visible()) for n in frames] == [
        ("step 999", False), ("step 500", True)]
    bounds = [(n.bounds().x(), n.bounds().y(), n.bounds().width(), n.bounds().height()) for n in frames]
    checks["undo_frames_at_selection"] = all(b[0] >= 32 and b[1] >= 16 and b[0] + b[2] <= 288 and b[1] + b[3] <= 208
                                             for b in bounds) and bool(bounds)
    checks["undo_bounds"] = bounds
    counted = ops.UndoPreviewOperation(client, picture_doc, picture, count=3, seed=4).wait(120)
    checks["undo_count"] = counted.error is None and len(counted.layers[0].childNodes()) == 3
    previews = [n.name() for n in picture_doc.topLevelNodes() if n.name().startswith("paintsd undo preview")]
    checks["undo_rerun_replaces_group"] = len(previews) == 1
    blank = next((n for n in frames if n.name() == "step 999"), None)
    if blank is not None:
        data = bytes(blank.pixelData(32, 16, 256, 192))
        checks["undo_step_999_blank"] = all(v == 255 for v in data[:4 * 256])
    picture_doc.exportImage(os.path.join(out, "undo.png"), __import__("krita").InfoObject())

    # A document that is not 8-bit RGBA is refused with a message, not a traceback.
    doc16 = app.createDocument(64, 64, "deep", "RGBA", "U16", "", 300.0)
    try:
        ops.ColorizeOperation(client, doc16, doc16.topLevelNodes()[0] if doc16.topLevelNodes() else None)
        checks["refuses_16_bit"] = False
    except ops.OperationError as error:
        checks["refuses_16_bit"] = "8-bit RGBA" in str(error)

    # An error reply from the daemon ends the operation with a readable error.
    bad = ops.ColorizeOperation(client, doc, sketch, hints=hints, engine="no-such-engine").wait(60)
    checks["error_reply_readable"] = isinstance(bad.error, pc.PaintsdError) and bad.error.code == "unsupported_engine"
    client.close()
    return checks


class CannedClient:
    """Stands in for pc.Client with one canned colorize result: what the sd engine returns (a visible `color`
    layer over a hidden `flats` one, raw RGBA, the pixels of fake_daemon.py), or with `layered=False` a result from a
    daemon older than layered results (only `image`). Records the params it was sent."""

    def __init__(self, w, h, layered=True):
        import fake_daemon
        import paintsd_client as pc
        self.pc = pc
        self.size = (w, h)
        self.layered = layered
        self.fake = fake_daemon
        self.sent = None

    def submit(self, method, params, frames=(), stream=True, on_disconnect=None):
        self.sent = params
        w, h = self.size
        result, payloads = self.fake.colorize_result(dict(params, output="rgba8", sketch=self.pc.rgba_frame(1, w, h)),
                                                     [None] + list(frames))
        if not self.layered:
            result.pop("layers")
            payloads = [payloads[1]]
        header = {"protocol": 1, "id": "canned", "type": "result", "job": "canned", "result": result}
        job = self.pc.Job(self, "canned", method)
        job._deliver(self.pc.Reply([json.dumps(header).encode()] + payloads))
        return job

    def pump(self, wait=0.0):
        return 0


def undo_history(app):
    """The active document's undo steps, oldest first, as Krita's Undo History docker lists them."""
    from PyQt5.QtWidgets import QAbstractItemView
    docker = next((d for d in app.dockers() if d.objectName() == "History"), None)
    views = docker.findChildren(QAbstractItemView) if docker is not None else []
    model = views[0].model() if views else None
    rows = [str(model.index(r, 0).data()) for r in range(model.rowCount())] if model is not None else []
    return [r for r in rows if r != "<empty>"]


def spin(seconds, until=None):
    """Runs Krita's event loop (the docker's timers and socket notifier) until `until()` or `seconds` pass; returns
    when `until()` became true (seconds, never 0), or False."""
    from PyQt5.QtWidgets import QApplication
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        QApplication.processEvents()
        if until is not None and until():
            return max(0.01, round(time.monotonic() - start, 2))
        time.sleep(0.02)
    QApplication.processEvents()
    return (until() and max(0.01, round(time.monotonic() - start, 2))) if until is not None else True


def copy_layer(app, doc, path, name, active):
    """A new paint layer holding the picture of `path`, added as an artist would (one undo step); then `active` is
    made the active layer again (Krita activates an added layer from its event loop, so after a spin)."""
    w, h = doc.width(), doc.height()
    source = app.openDocument(path)
    node = doc.createNode(name, "paintlayer")
    node.setPixelData(source.topLevelNodes()[0].pixelData(0, 0, w, h), 0, 0, w, h)
    source.close()
    doc.rootNode().addChildNode(node, None)
    spin(0.2)
    doc.setActiveNode(active)
    return node


def docker_checks(checks, art, out, paintsd, late_runtime):
    """The docker in a Krita window, driven as an artist would, its daemon started only after Krita."""
    from krita import Krita
    from PyQt5.QtCore import QPoint, QRect, Qt
    from paintsd_krita import docker as docker_module
    from paintsd_krita import operations as ops

    uncaught = []
    sys.excepthook = lambda kind, value, tb: uncaught.append("".join(traceback.format_exception(kind, value, tb)))
    app = Krita.instance()
    late = f"ipc://{late_runtime}/paintsd.sock"
    app.writeSetting("paintsd", "endpoint", late)
    window = app.openWindow()
    window.qwindow().resize(1600, 1000)
    window.qwindow().show()
    doc = app.openDocument(os.path.join(art, "umbrella-lineart.png"))
    doc.setBatchmode(True)
    window.addView(doc)
    lineart = doc.topLevelNodes()[0]
    doc.setActiveNode(lineart)
    # The docker Krita made for this window from the plug-in's factory (importing paintsd_krita registered it).
    docker = next((d for d in app.dockers() if isinstance(d, docker_module.PaintsdDocker)), None)
    checks["docker_made_by_krita"] = docker is not None
    if docker is None:
        docker = docker_module.PaintsdDocker()
        window.qwindow().addDockWidget(Qt.RightDockWidgetArea, docker)
    docker.show()
    docker.raise_()
    statuses = []
    show_status = docker.show_status
    docker.show_status = lambda text: (statuses.append(text), show_status(text))
    undo = app.action("edit_undo")
    daemon = None
    try:
        # Krita before the daemon: the docker says so, and a press of Colorize says so again (no traceback).
        spin(1.0)
        checks["docker_says_no_daemon"] = not docker.connected and "no paintsd answers" in docker.status_text
        # That long line (a socket path) stays inside the docker, clear of Krita's status bar (zoom indicator).
        main = window.qwindow()
        spin(0.5)
        dock = QRect(docker.mapTo(main, QPoint(0, 0)), docker.size())
        label = QRect(docker.status.mapTo(main, QPoint(0, 0)), docker.status.size())
        bar = main.statusBar().geometry()
        checks["docker_status_clear_of_status_bar"] = (not dock.intersects(bar) and dock.right() < main.width()
                                                       and label.right() <= dock.right())
        checks["docker_geometry"] = {"window": [main.width(), main.height()], "docker": dock.getRect(),
                                     "status": label.getRect(), "status_bar": bar.getRect()}
        main.grab().save(os.path.join(out, "docker-no-daemon.png"))
        docker.colorize()
        spin(0.3)
        checks["docker_colorize_without_daemon_says_so"] = ("no paintsd answers" in docker.status_text
                                                             and len(doc.topLevelNodes()) == 1)
        # The daemon starts: the docker finds it by itself, without a click.
        daemon = subprocess.Popen([paintsd, "--runtime-dir", late_runtime, "--log-level", "warning"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spin(20, lambda: os.path.exists(os.path.join(late_runtime, "paintsd.sock")))
        after = spin(10, lambda: docker.connected)
        checks["docker_reconnects_by_itself"] = bool(after) and docker.status_text.startswith("paintsd ")
        checks["docker_reconnect_s"] = after
        checks["docker_engines_listed"] = docker.engine.count() > 1

        # Nothing to colour from yet (no hints layer): said, nothing added.
        docker.colorize()
        spin(0.5)
        checks["docker_nothing_to_colour"] = ("nothing to colour from" in docker.status_text
                                              and [n.name() for n in doc.topLevelNodes()] == [lineart.name()])
        # The artist adds a layer named "hints" with scribbles: the list follows (timer), and picks it.
        copy_layer(app, doc, os.path.join(art, "umbrella-hints.png"), "hints", lineart)
        followed = spin(3, lambda: docker.hints.currentText() == "hints")
        checks["docker_hints_list_follows_layers"] = bool(followed)
        checks["docker_hints_list_s"] = followed
        # A layer added while the docker is hidden shows up when the list is opened.
        docker.hide()
        copy_layer(app, doc, os.path.join(art, "umbrella-colored.png"), "reference picture", lineart)
        spin(1.5)
        stale = [docker.reference.itemText(i) for i in range(docker.reference.count())]
        docker.reference.showPopup()
        spin(0.2)
        docker.reference.hidePopup()
        opened = [docker.reference.itemText(i) for i in range(docker.reference.count())]
        checks["docker_list_refreshes_when_opened"] = "reference picture" not in stale and "reference picture" in opened
        docker.show()

        # Colorize: one Multiply layer above the (opaque) line art, and the line art stays active.
        def run(press):
            press()
            done = spin(120, lambda: docker.operation is None)
            spin(0.3)     # Krita activates added layers from its event loop; the docker restores the artist's
            return done
        steps_before = undo_history(app)
        run(docker.colorize)
        first = docker.last_operation
        # Over opaque line art (Normal mode) the result layer is set to Multiply before it is added: Krita's Python
        # API records that as a step of its own, then the addition; the last step (the first Ctrl+Z) is the layer.
        checks["docker_colorize_undo_steps"] = undo_history(app)[len(steps_before):]
        checks["docker_colorize_last_step_adds_the_layer"] = (
            checks["docker_colorize_undo_steps"] == ["Composition Mode Change", "Add Layer"])
        layers = [n.name() for n in doc.topLevelNodes()]
        checks["docker_colorize_added"] = (first is not None and first.error is None and len(first.layers) == 1
                                           and layers[1].startswith("color · builtin seed "))
        checks["docker_colorize_status"] = docker.status_text
        active = doc.activeNode()
        checks["docker_lineart_stays_active"] = active is not None and active.uniqueId() == lineart.uniqueId()
        # Again: the new result replaces the first instead of stacking a second Multiply layer.
        first_id = first.layers[0].uniqueId() if first is not None and first.layers else None
        run(docker.colorize)
        second = docker.last_operation
        results = [n for n in doc.topLevelNodes() if ops.is_colorize_result(n.name())]
        checks["docker_rerun_replaces"] = (second is not first and second.error is None and len(results) == 1
                                           and results[0].uniqueId() != first_id)
        checks["docker_lineart_active_after_rerun"] = doc.activeNode().uniqueId() == lineart.uniqueId()
        checks["docker_layers"] = [n.name() for n in doc.topLevelNodes()]
        # Undo of the replacement: how many Ctrl+Z bring the first result back (Krita's Python API has no undo
        # macro: the removal and the addition are one step each).
        steps = 0
        while steps < 4:
            undo.trigger()
            doc.waitForDone()
            steps += 1
            now = [n.uniqueId() for n in doc.topLevelNodes() if ops.is_colorize_result(n.name())]
            if now == [first_id]:
                break
        checks["docker_replace_undo_steps"] = steps
        checks["docker_replace_undone_in_two"] = steps <= 2
        # Undo Preview of a picture: one group, the frame nearest the finished picture on top and shown, and one
        # Ctrl+Z removes the whole group.
        picture_doc = app.openDocument(os.path.join(art, "blocks-colored.png"))
        picture_doc.setBatchmode(True)
        window.addView(picture_doc)
        picture = picture_doc.topLevelNodes()[0]
        spin(0.3)
        picture_doc.setActiveNode(picture)
        listed = lambda: [docker.hints.itemText(i) for i in range(docker.hints.count())]  # noqa: E731
        checks["docker_follows_active_document"] = bool(spin(3, lambda: listed() == ["(none)", picture.name()]))
        checks["docker_hints_list_of_picture"] = listed()
        docker.steps.setText("400, 600, 800, 900, 950, 999")
        run(docker.undo_preview)
        preview = docker.last_operation
        group = preview.layers[0] if preview is not None and preview.layers else None
        frames = [(n.name(), n.visible()) for n in group.childNodes()] if group is not None else []
        checks["docker_undo_frames"] = frames
        checks["docker_undo_order_nearest_on_top"] = frames == [
            ("step 999", False), ("step 950", False), ("step 900", False), ("step 800", False), ("step 600", False),
            ("step 400", True)]
        before = [n.name() for n in picture_doc.topLevelNodes()]
        undo.trigger()
        picture_doc.waitForDone()
        after_undo = [n.name() for n in picture_doc.topLevelNodes()]
        checks["docker_undo_group_one_step"] = (len(before) == 2 and after_undo == [picture.name()])
        checks["docker_undo_layers_before_after"] = [before, after_undo]
        # 16 frames: still one step.
        docker.steps.setText("")
        docker.count.setValue(16)
        run(docker.undo_preview)
        big = docker.last_operation
        checks["docker_undo_16_frames"] = (big is not None and big.error is None
                                           and len(big.layers[0].childNodes()) == 16)
        undo.trigger()
        picture_doc.waitForDone()
        checks["docker_undo_16_one_step"] = [n.name() for n in picture_doc.topLevelNodes()] == [picture.name()]
        spin(0.3)
        checks["docker_picture_stays_active"] = picture_doc.activeNode().uniqueId() == picture.uniqueId()

        # The sd engine through a stand-in daemon (fake_daemon.py: this machine has no sd models): the docker's
        # option fields come from its hello, what the artist sets goes into the request, and the layered result (a
        # shown `color` over a hidden `flats`) is one group in one undo step.
        fake_log = os.path.join(out, "fake-requests.jsonl")
        fake_socket = os.path.join(late_runtime, "fake.sock")
        fake = subprocess.Popen(["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                  "fake_daemon.py"), "ipc://" + fake_socket, fake_log])
        try:
            spin(20, lambda: os.path.exists(fake_socket))
            docker.endpoint.setText("ipc://" + fake_socket)
            docker.endpoint_edited()
            checks["docker_fake_connected"] = bool(spin(10, lambda: docker.connected and "sd" in docker.engines))
            docker.engine.setCurrentIndex(docker.engine.findData("sd"))
            spin(0.2)
            fields = docker.options
            widgets = fields.widgets
            combo_values = lambda c: [c.itemData(i) for i in range(c.count())]   # noqa: E731
            main_rows = [fields.main_form.itemAt(i, fields.main_form.LabelRole).widget().text()
                         for i in range(fields.main_form.rowCount())]
            checks["docker_sd_fields_first"] = main_rows == ["Model", "ControlNet", "Hint strength",
                                                             "Control strength", "Palette lock", "Steps"]
            checks["docker_sd_fields_main"] = main_rows
            checks["docker_sd_more_fields"] = (sorted(n for n in widgets if n not in dict.fromkeys(
                docker_module.FIRST_OPTIONS)) == ["control_end", "control_start", "guess_mode", "guidance", "sampler",
                                                  "size"] and fields.more.isHidden())
            model, controlnet = widgets.get("model"), widgets.get("controlnet")
            checks["docker_model_list_from_enum"] = (
                model is not None and combo_values(model) == ["anything-v5", "counterfeit-v3"]
                and model.currentData() == "anything-v5")
            labels = [controlnet.itemText(i) for i in range(controlnet.count())] if controlnet is not None else []
            checks["docker_controlnet_list"] = labels
            checks["docker_controlnet_list_with_kinds"] = (
                controlnet is not None and combo_values(controlnet)[:4] == [
                    "auto", "none", "control_v11p_sd15s2_lineart_anime", "control_v11p_sd15_canny"]
                and "control_v11p_sd15s2_lineart_anime (lineart_anime)" in labels
                and controlnet.currentData() == "auto")
            mystery = controlnet.findData("mystery") if controlnet is not None else -1
            checks["docker_controlnet_with_problem_not_pickable"] = (
                mystery >= 0 and not controlnet.model().item(mystery).isEnabled()
                and "sidecar" in (controlnet.itemData(mystery, Qt.ToolTipRole) or ""))
            hint = widgets.get("hint_strength")
            checks["docker_hint_strength_range"] = (
                hint is not None and (hint.minimum(), hint.maximum(), hint.value()) == (0.05, 1.0, 0.75))
            steps_field = widgets.get("steps")
            checks["docker_steps_range"] = (steps_field is not None
                                            and (steps_field.minimum(), steps_field.maximum(), steps_field.value())
                                            == (1, 100, 20))
            checks["docker_bool_is_checkbox"] = type(widgets.get("guess_mode")).__name__ == "QCheckBox"
            checks["docker_defaults_send_nothing"] = docker.colorize_options() == {}
            model.setCurrentIndex(model.findData("counterfeit-v3"))
            controlnet.setCurrentIndex(controlnet.findData("control_v11p_sd15s2_lineart_anime"))
            hint.setValue(0.5)
            steps_field.setValue(8)
            widgets["guess_mode"].setChecked(True)
            wanted = {"model": "counterfeit-v3", "controlnet": "control_v11p_sd15s2_lineart_anime",
                      "hint_strength": 0.5, "steps": 8, "guess_mode": True}
            # A hello again (the docker's liveness check) with the same description keeps what the artist set.
            docker.took_hello(docker.client.hello())
            checks["docker_fields_survive_hello"] = docker.colorize_options() == wanted
            # Back to the line art's document (the undo previews' document was shown last), where the artist now
            # has the lines on a transparent layer of their own, at the top.
            for view in window.views():
                if view.document().rootNode().uniqueId() == doc.rootNode().uniqueId():
                    window.showView(view)
                    view.setVisible()
            spin(0.3)
            w, h = doc.width(), doc.height()
            ink = bytearray(lineart.pixelData(0, 0, w, h))
            for i in range(0, len(ink), 4):
                ink[i + 3] = 255 - min(ink[i], ink[i + 1], ink[i + 2])
            lines = doc.createNode("lines", "paintlayer")
            lines.setPixelData(bytes(ink), 0, 0, w, h)
            doc.rootNode().addChildNode(lines, None)
            spin(0.3)
            doc.setActiveNode(lines)
            spin(0.3)
            checks["docker_back_on_line_art"] = (app.activeDocument().rootNode().uniqueId()
                                                 == doc.rootNode().uniqueId()
                                                 and doc.activeNode().uniqueId() == lines.uniqueId())
            before = [n.name() for n in doc.topLevelNodes()]
            steps_before = undo_history(app)
            run(docker.colorize)
            layered = docker.last_operation
            after = [n.name() for n in doc.topLevelNodes()]
            group = layered.layers[0] if layered is not None and layered.layers else None
            checks["docker_sd_colorize_no_error"] = layered is not None and layered.error is None
            checks["docker_sd_group_under_line_art"] = (
                group is not None and after[-2:] == [group.name(), "lines"]
                and group.name() == "paintsd colorize · sd counterfeit-v3 seed 1234"
                and group.blendingMode() == "normal")
            checks["docker_sd_undo_steps"] = undo_history(app)[len(steps_before):]
            checks["docker_sd_one_undo_step"] = checks["docker_sd_undo_steps"] == ["Add Layer"]
            checks["docker_sd_layers"] = [(n.name(), n.visible()) for n in group.childNodes()][::-1] if group else []
            checks["docker_sd_layers_in_order"] = checks["docker_sd_layers"] == [
                ("color · sd counterfeit-v3 seed 1234", True), ("flats · sd counterfeit-v3 seed 1234", False)]
            requests = [json.loads(line) for line in open(fake_log)]
            sent = next((r["params"] for r in reversed(requests) if r.get("method") == "colorize"), {})
            checks["docker_sd_options_sent"] = sent.get("options") == wanted and sent.get("engine") == "sd"
            checks["docker_sd_sent"] = {k: v for k, v in sent.items() if k in ("engine", "options", "output")}
            undo.trigger()
            doc.waitForDone()
            checks["docker_sd_result_one_undo_step"] = [n.name() for n in doc.topLevelNodes()] == before
            spin(0.3)
            checks["docker_lineart_active_after_sd"] = doc.activeNode().uniqueId() == lines.uniqueId()
        finally:
            fake.terminate()
            fake.wait(10)

        checks["docker_no_traceback"] = not uncaught and not any("plug-in error" in t for t in statuses)
        if uncaught:
            checks["docker_uncaught"] = uncaught
        checks["docker_statuses"] = statuses[-12:]
        for d in (doc, picture_doc):
            d.setModified(False)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(10)
        sys.excepthook = sys.__excepthook__
        try:
            window.qwindow().close()
        except Exception:  # noqa: BLE001
            pass


def __main__(args):
    report_path, art, out = args[0], args[1], args[2]
    try:
        checks = main(report_path, art, out)
        report = {"checks": checks}
    except Exception:
        report = {"exception": traceback.format_exc()}
    if len(args) >= 5 and "checks" in report:
        report["checks"]["docker_finished"] = False
        with open(report_path, "w") as f:      # the checks so far, should Krita crash in the docker's
            json.dump(report, f, indent=1)
        try:
            docker_checks(report["checks"], art, out, args[3], args[4])
            report["checks"]["docker_finished"] = True
        except Exception:
            report["checks"]["docker_exception"] = traceback.format_exc()
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
