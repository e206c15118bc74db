"""Runs inside Krita (kritarunner): the plug-in's own colorize and undo-preview code paths (paintsd_krita.operations)
against a real paintsd, on a document opened from the sample art; exports and checks the pixels. kritarunner exits 0
even when a script fails, so every check goes into a JSON report file that Tests/bridges/krita.sh reads.

    kritarunner -s krita_test REPORT.json ART_DIR OUT_DIR
"""
import json
import os
import sys
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
    checks["colorize_layer_named"] = layer is not None and layer.name() == "paintsd colorize (builtin, seed 3)"
    children = [n.name() for n in doc.rootNode().childNodes()]
    # The sample line art is opaque (black on white): the colours go above it, multiplied, so both show.
    checks["colorize_layer_multiplied_above_opaque_sketch"] = (
        children[:2] == [sketch.name(), "paintsd colorize (builtin, seed 3)"] and layer.blendingMode() == "multiply")
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
        order[-2:] == ["paintsd colorize (builtin, seed 4)", "lines"] and under.layers[0].blendingMode() == "normal")

    # A reference picture from a file, no scribbles: the result takes the reference's palette.
    from_file = ops.ColorizeOperation(client, doc, lines, reference_file=os.path.join(art, "umbrella-colored.png"),
                                      seed=5).wait(120)
    checks["reference_file_used"] = from_file.error is None and len(from_file.layers) == 1
    try:
        ops.ColorizeOperation(client, doc, lines, reference_file=os.path.join(out, "missing.png"))
        checks["missing_reference_file_refused"] = False
    except ops.OperationError as error:
        checks["missing_reference_file_refused"] = "reference file" in str(error)

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
    bounds = [(n.bounds().x(), n.bounds().y(), n.bounds().width(), n.bounds().height()) for n in frames]
    checks["undo_frames_at_selection"] = all(b[0] >= 32 and b[1] >= 16 and b[0] + b[2] <= 288 and b[1] + b[3] <= 208
                                             for b in bounds) and bool(bounds)
    checks["undo_bounds"] = bounds
    counted = ops.UndoPreviewOperation(client, picture_doc, picture, count=3, seed=4).wait(120)
    checks["undo_count"] = counted.error is None and len(counted.layers[0].childNodes()) == 3
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
    bad = ops.ColorizeOperation(client, doc, sketch, engine="no-such-engine").wait(60)
    checks["error_reply_readable"] = isinstance(bad.error, pc.PaintsdError) and bad.error.code == "unsupported_engine"
    client.close()
    return checks


def __main__(args):
    report_path, art, out = args[0], args[1], args[2]
    try:
        checks = main(report_path, art, out)
        report = {"checks": checks}
    except Exception:
        report = {"exception": traceback.format_exc()}
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)
