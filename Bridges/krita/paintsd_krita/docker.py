"""paintsd_krita.docker: the paintsd docker: Colorize Layer and Undo Preview buttons, fields filled from the daemon's
hello, a progress bar with live previews, Cancel, and the endpoint setting. Jobs are polled from a QTimer and a
QSocketNotifier, so Krita stays responsive; errors show in the docker as text.

Every slot runs through `guarded`: whatever goes wrong becomes a line in the docker, never Krita's traceback dialog.
The docker connects by itself: while no daemon answers it says so and sends a hello every few seconds (without ever
waiting on the socket), and once connected it checks now and then that the daemon is still there. The layer lists
follow the document: they are read again when a list opens, every second while the docker is shown (Krita's Python
API has no signal for layer changes), and right before a job starts."""
import functools
import json
import sys
import time
import traceback

from krita import DockWidget, Krita
from PyQt5.QtCore import QSocketNotifier, Qt, QTimer
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QFrame, QHBoxLayout,
                             QLabel, QLineEdit, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
                             QToolButton, QVBoxLayout, QWidget)

from . import operations as ops
from .operations import pc

SETTINGS = ("paintsd", "endpoint")
RETRY_MS = 2000            # no daemon yet: a hello this often
CHECK_MS = 10000           # connected and idle: a hello this often, to notice a daemon that went away
HELLO_TIMEOUT_S = 3.0      # a hello unanswered this long: no daemon (it answers hello even while busy)
LAYERS_MS = 1000           # the layer lists are compared with the document this often
STATUS_LINES = 4           # the status shows at most this many lines; the whole text is in its tooltip
# Engine options shown first, in this order (those the chosen engine has); the others go under "More options".
# Only an order: which options there are, their kinds, ranges, defaults and choices all come from the daemon's hello.
FIRST_OPTIONS = ("model", "controlnet", "hint_strength", "strength", "control_strength", "palette_lock", "reference_mode",
                 "reference_strength", "steps")
OPTION_LABELS = {"controlnet": "ControlNet"}


def message_of(error):
    return error.message if isinstance(error, pc.PaintsdError) else str(error)


def guarded(method):
    """Runs a slot so that no exception leaves it: the artist's problems (OperationError, PaintsdError) are shown as
    they are, anything else as a one-line plug-in error, with the traceback on Krita's stderr for a bug report."""
    @functools.wraps(method)
    def wrapper(self, *args):
        try:
            return method(self, *args)
        except (ops.OperationError, pc.PaintsdError) as error:
            self.show_status(message_of(error))
        except Exception as error:  # noqa: BLE001 - the point: never Krita's traceback dialog
            traceback.print_exc(file=sys.stderr)
            self.show_status(f"paintsd plug-in error: {type(error).__name__}: {error} (the details are in Krita's log)")
        return None
    return wrapper


def breakable(text):
    """The text with zero-width spaces after path separators and inside long words, so a narrow label can wrap an
    endpoint like ipc:///run/user/1000/paintsd/paintsd.sock instead of growing past the docker."""
    out = []
    for word in text.split(" "):
        if len(word) > 16:
            word = "".join(c + "\u200b" if c in "/_.:-@" else c for c in word)
        out.append(word)
    return " ".join(out)


class LayerCombo(QComboBox):
    """A layer list that reads the document's layers again each time it opens."""

    def __init__(self, refresh):
        super().__init__()
        self.refresh = refresh
        self.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(8)

    def showPopup(self):
        self.refresh()
        super().showPopup()


def option_label(name):
    return OPTION_LABELS.get(name) or name.replace("_", " ").capitalize()


def asset_entry(assets, value):
    """The entry of the engine's `assets` (hello) named `value`, e.g. a ControlNet's {"name", "kind", ...}, or None."""
    for entries in (assets or {}).values():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name") == value:
                return entry
    return None


class OptionFields(QWidget):
    """The fields of one engine's options for one method, built from what the daemon's hello says of each option
    (`type`, `default`, `minimum`, `maximum`, `enum`, `description`) and of the engine's `assets`: a number is a spin
    box within its range, a boolean a check box, a string with an `enum` a list of those values (a ControlNet's list
    entry says its kind from `assets`, and one with a `problem` is shown but cannot be picked), another string a text
    field. The options in FIRST_OPTIONS come first; the others are under "More options". `values()` is what differs
    from the defaults, so the daemon's own defaults apply to the rest."""

    def __init__(self):
        super().__init__()
        self.key = None
        self.descriptions = {}
        self.widgets = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.main = QWidget()
        self.main_form = self.make_form(self.main)
        self.more_button = QToolButton()
        self.more_button.setText("More options")
        self.more_button.setCheckable(True)
        self.more_button.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.more_button.setArrowType(Qt.RightArrow)
        self.more_button.toggled.connect(self.show_more)
        self.more = QWidget()
        self.more_form = self.make_form(self.more)
        self.more.hide()
        for widget in (self.main, self.more_button, self.more):
            layout.addWidget(widget)

    @staticmethod
    def make_form(parent):
        form = QFormLayout(parent)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        return form

    def show_more(self, shown):
        self.more.setVisible(shown)
        self.more_button.setArrowType(Qt.DownArrow if shown else Qt.RightArrow)

    def build(self, engine, descriptions, assets, saved=None):
        """Fields for these option descriptions; nothing changes when they are what the fields show already (hello
        comes again every few seconds), and a rebuilt field keeps the value it had (else the value saved for the
        engine, else the default) when that value still fits."""
        key = json.dumps([engine, descriptions, assets], sort_keys=True)
        if key == self.key:
            return False
        previous = self.current() if self.key is not None and json.loads(self.key)[0] == engine else {}
        previous = dict(saved or {}, **previous)
        self.key = key
        for form in (self.main_form, self.more_form):
            while form.rowCount():
                form.removeRow(0)
        self.descriptions = dict(descriptions or {})
        self.widgets = {}
        names = [n for n in FIRST_OPTIONS if n in self.descriptions]
        names += [n for n in self.descriptions if n not in names]
        for name in names:
            description = self.descriptions[name]
            widget = self.make_field(description, assets)
            if name in previous:
                self.set_value(widget, description, previous[name])
            widget.setToolTip(str(description.get("description", "")))
            self.widgets[name] = widget
            (self.main_form if name in FIRST_OPTIONS else self.more_form).addRow(option_label(name), widget)
        self.more_button.setVisible(any(name not in FIRST_OPTIONS for name in names))
        return True

    @staticmethod
    def make_field(description, assets):
        kind, default = description.get("type"), description.get("default")
        if kind == "boolean":
            widget = QCheckBox()
            widget.setChecked(bool(default))
        elif kind in ("integer", "number"):
            low, high = description.get("minimum"), description.get("maximum")
            if kind == "integer":
                widget = QSpinBox()
                widget.setRange(int(low) if low is not None else -2 ** 31, int(high) if high is not None else 2 ** 31 - 1)
                widget.setValue(int(default or 0))
            else:
                widget = QDoubleSpinBox()
                span = (high - low) if low is not None and high is not None else 100
                widget.setDecimals(2 if span <= 10 else 1)
                widget.setSingleStep(0.05 if span <= 2 else 0.5 if span <= 50 else 1)
                widget.setRange(low if low is not None else -1e9, high if high is not None else 1e9)
                widget.setValue(float(default or 0))
        elif description.get("enum") is not None:
            widget = QComboBox()
            widget.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            widget.setMinimumContentsLength(8)
            choices = [str(v) for v in description["enum"]]
            if default is not None and str(default) not in choices:
                choices.insert(0, str(default))
            for value in choices:
                entry = asset_entry(assets, value)
                label = value
                if entry and entry.get("kind"):
                    label += f" ({entry['kind']})"
                if entry and entry.get("problem"):
                    label += " - unusable"
                widget.addItem(label, value)
                index = widget.count() - 1
                if entry and entry.get("problem"):
                    widget.setItemData(index, str(entry["problem"]), Qt.ToolTipRole)
                    item = widget.model().item(index)
                    if item is not None:
                        item.setEnabled(False)
                if value == str(default):
                    widget.setCurrentIndex(index)
        else:
            widget = QLineEdit("" if default is None else str(default))
        return widget

    @staticmethod
    def value_of(widget):
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, QSpinBox):
            return widget.value()
        if isinstance(widget, QDoubleSpinBox):
            return round(widget.value(), widget.decimals())
        if isinstance(widget, QComboBox):
            return widget.currentData()
        return widget.text()

    @staticmethod
    def set_value(widget, description, value):
        """Shows `value` when it fits the field (a saved value the daemon's ranges or lists no longer take is left)."""
        try:
            if isinstance(widget, QCheckBox) and isinstance(value, bool):
                widget.setChecked(value)
            elif isinstance(widget, (QSpinBox, QDoubleSpinBox)) and not isinstance(value, bool):
                if widget.minimum() <= value <= widget.maximum():
                    widget.setValue(int(value) if isinstance(widget, QSpinBox) else float(value))
            elif isinstance(widget, QComboBox):
                index = widget.findData(value)
                item = widget.model().item(index) if index >= 0 else None
                if item is not None and item.isEnabled():
                    widget.setCurrentIndex(index)
            elif isinstance(widget, QLineEdit) and isinstance(value, str):
                widget.setText(value)
        except (TypeError, ValueError):
            pass

    def current(self):
        return {name: self.value_of(widget) for name, widget in self.widgets.items()}

    def values(self):
        """The options to send: those whose value is not the default."""
        out = {}
        for name, value in self.current().items():
            default = self.descriptions[name].get("default")
            same = (value == default if not isinstance(value, float) or not isinstance(default, (int, float))
                    else abs(value - default) < 1e-9)
            if not same:
                out[name] = value
        return out


class PaintsdDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("paintsd")
        self.client = None
        self.notifier = None
        self.operation = None       # the job in flight
        self.last_operation = None  # the one that ended last (what it added, its error)
        self.connected = False
        self.engines = {}           # name -> the engine's entry in hello
        self.defaults = {}          # method -> default engine name
        self.hello_job = None       # a hello in flight (never waited on)
        self.hello_sent = 0.0
        self.polling = False
        self.status_text = ""
        self.layer_key = None       # what the layer lists were built from
        self.document_key = None
        self.hints_picked = False   # the artist chose the hints layer (else the docker picks one named like hints)
        self.timer = QTimer(self)   # a job or a hello in flight
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.poll)
        self.link_timer = QTimer(self)
        self.link_timer.timeout.connect(self.check_link)
        self.layer_timer = QTimer(self)
        self.layer_timer.setInterval(LAYERS_MS)
        self.layer_timer.timeout.connect(self.follow_layers)

        root = QWidget()
        layout = QVBoxLayout(root)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)     # a narrow docker puts fields under their labels
        self.endpoint = QLineEdit(Krita.instance().readSetting(*SETTINGS, "") or pc.default_endpoint())
        self.endpoint.editingFinished.connect(self.endpoint_edited)
        self.engine = QComboBox()
        self.engine.addItem("(default)", "")
        self.prompt = QLineEdit()
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2 ** 31 - 1)
        self.seed.setValue(-1)
        self.seed.setSpecialValueText("random")
        # The chosen engine's colorize options, as hello describes them (model, ControlNet, strengths, steps...).
        self.options = OptionFields()
        self.engine.currentIndexChanged.connect(self.engine_changed)
        self.hints = LayerCombo(self.list_opened)
        self.hints.activated.connect(self.hints_activated)
        self.hints.addItem("(none)", None)
        self.reference = LayerCombo(self.list_opened)
        self.reference.addItem("(none)", None)
        self.reference_file = QLineEdit()
        self.reference_file.setPlaceholderText("or a PNG file")
        browse = QPushButton("...")
        browse.clicked.connect(self.browse_reference)
        reference_row = QHBoxLayout()
        reference_row.addWidget(self.reference_file)
        reference_row.addWidget(browse)
        self.replace = QCheckBox("Replace previous result")
        self.replace.setToolTip("A new Colorize replaces the colour layer an earlier one put beside this line art; "
                                "a new Undo Preview replaces the preview group above this layer")
        self.replace.setChecked(True)
        self.steps = QLineEdit()
        self.steps.setPlaceholderText("400, 600, 800, 900, 950, 999")
        self.count = QSpinBox()
        self.count.setRange(0, 64)
        self.count.setSpecialValueText("use the steps")
        form.addRow("Daemon", self.endpoint)
        form.addRow("Engine", self.engine)
        form.addRow("Prompt", self.prompt)
        form.addRow("Seed", self.seed)
        form.addRow(self.options)
        form.addRow("Hints layer", self.hints)
        form.addRow("Reference", self.reference)
        form.addRow("", reference_row)
        form.addRow("", self.replace)
        form.addRow("Undo steps", self.steps)
        form.addRow("or count", self.count)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.colorize_button = QPushButton("Colorize Layer")
        self.colorize_button.clicked.connect(self.colorize)
        self.undo_button = QPushButton("Undo Preview")
        self.undo_button.clicked.connect(self.undo_preview)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        for b in (self.colorize_button, self.undo_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        progress_row = QHBoxLayout()          # Cancel beside the bar: two buttons a row fit a narrow docker
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        layout.addLayout(progress_row)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(64)
        self.preview.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        layout.addWidget(self.preview)
        # The status never widens the docker (it wraps, long words included) nor grows it past a few lines: at
        # 1600x1000 a long endpoint or error had pushed it over Krita's status bar. The whole text is the tooltip.
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.PlainText)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Maximum)
        self.status.setMaximumHeight(self.status.fontMetrics().lineSpacing() * STATUS_LINES + 4)
        layout.addWidget(self.status)
        layout.addStretch(1)
        # In a scroll area, the docker asks for little room: Krita can make it as small as its layout needs.
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.NoFrame)
        scroll.setWidget(root)
        self.setWidget(scroll)
        self.layer_timer.start()
        QTimer.singleShot(0, self.reconnect)

    # --- daemon ---

    @guarded
    def endpoint_edited(self, *_):
        if self.client is None or self.endpoint.text().strip() != self.client.endpoint:
            self.reconnect()

    @guarded
    def reconnect(self, *_):
        """A new connection to the endpoint in the field (remembered), and a hello on it."""
        text = self.endpoint.text().strip()
        Krita.instance().writeSetting(*SETTINGS, text)
        if self.client is not None:
            if self.notifier is not None:
                self.notifier.setEnabled(False)
                self.notifier.deleteLater()
                self.notifier = None
            if self.operation is not None:
                self.operation.error = ops.OperationError("the daemon's address changed: the job was abandoned")
                self.operation, self.last_operation = None, self.operation
                self.job_ended_ui()
            self.client.close()
        self.client = pc.Client(text or None)
        self.notifier = QSocketNotifier(self.client.fileno(), QSocketNotifier.Read, self)
        self.notifier.activated.connect(self.poll)
        self.connected = False
        self.hello_job = None
        self.send_hello()

    def send_hello(self):
        """Sends a hello without waiting for it (poll() reads the reply); no daemon socket: disconnected at once."""
        try:
            self.hello_job = self.client.submit("hello", {}, stream=False)
        except pc.PaintsdError as error:
            self.hello_job = None
            self.disconnected(error)
            return
        self.hello_sent = time.monotonic()
        self.timer.start()

    def disconnected(self, error):
        self.connected = False
        self.show_status(f"{message_of(error)} (the docker tries again every {RETRY_MS // 1000} s)")
        self.link_timer.start(RETRY_MS)

    @guarded
    def check_link(self, *_):
        """The reconnect/liveness timer: a hello when none is in flight, a verdict on one that went unanswered."""
        if self.client is None:
            self.reconnect()
            return
        if self.operation is not None:
            return                   # the job's own events say the daemon is there
        if self.hello_job is not None and not self.hello_job.done:
            if time.monotonic() - self.hello_sent < HELLO_TIMEOUT_S:
                return
            self.hello_job = None
            self.disconnected(pc.DaemonNotRunning(self.client.endpoint))
        self.send_hello()

    def took_hello(self, hello):
        self.engines = {e["name"]: e for e in hello.get("engines", [])}
        self.defaults = hello.get("defaults", {})
        chosen = self.engine.currentData()
        self.engine.clear()
        self.engine.addItem("(default)", "")
        self.engine.blockSignals(True)
        for name, engine in self.engines.items():
            if "colorize" in engine["methods"] or "undo.preview" in engine["methods"]:
                self.engine.addItem(f"{name} ({engine['status']})", name)
                if name == chosen:
                    self.engine.setCurrentIndex(self.engine.count() - 1)
        self.engine.blockSignals(False)
        self.build_options()
        was_connected, self.connected = self.connected, True
        self.link_timer.start(CHECK_MS)
        if not was_connected and self.operation is None:
            self.show_status(f"paintsd {hello['daemon']['version']} at {self.client.endpoint}")

    def connect_now(self):
        """When a button is pressed before the timer found the daemon: one short hello, waited on (up to 2 s)."""
        if self.client is None:
            self.reconnect()
        if self.connected:
            return
        try:
            self.took_hello(self.client.hello(timeout=2.0))
        except pc.PaintsdError as error:
            self.disconnected(error)
            raise ops.OperationError(self.status_text) from None

    @guarded
    def engine_changed(self, *_):
        self.build_options()

    def chosen_engine(self, method):
        return self.engine.currentData() or self.defaults.get(method, "")

    def build_options(self):
        """The option fields of the chosen engine's colorize, from hello (rebuilt only when they change)."""
        name = self.chosen_engine("colorize")
        engine = self.engines.get(name, {})
        descriptions = engine.get("capabilities", {}).get("colorize", {}).get("options", {})
        self.options.build(name, descriptions, engine.get("assets"), self.saved_options(name))

    @staticmethod
    def saved_options(engine):
        try:
            saved = json.loads(Krita.instance().readSetting("paintsd", f"options.{engine}", "") or "{}")
        except ValueError:
            return {}
        return saved if isinstance(saved, dict) else {}

    def engine_info(self, method):
        return self.engines.get(self.chosen_engine(method), {}).get("capabilities", {}).get(method, {})

    # --- layers ---

    @guarded
    def canvasChanged(self, canvas):
        self.refresh_layers()

    @guarded
    def list_opened(self):
        self.refresh_layers()

    def active_document(self):
        return Krita.instance().activeDocument()

    @guarded
    def follow_layers(self, *_):
        if self.isVisible():
            self.refresh_layers()

    @guarded
    def hints_activated(self, *_):
        self.hints_picked = True

    def refresh_layers(self, *_):
        """Rebuilds the layer lists when the document's layers (or the active layer) changed; keeps what the artist
        chose while it exists, else picks the hints layer by its name."""
        document = self.active_document()
        nodes = list(document.topLevelNodes()) if document is not None else []
        active = document.activeNode() if document is not None else None
        document_key = document.rootNode().uniqueId().toString() if document is not None else None
        key = (document_key, tuple((n.uniqueId().toString(), n.name()) for n in nodes),
               active.uniqueId().toString() if active is not None else None)
        if key == self.layer_key:
            return
        self.layer_key = key
        if document_key != self.document_key:
            self.document_key = document_key
            self.hints_picked = False
            keep_reference = None
        else:
            keep_reference = self.reference.currentData()
        keep_hints = self.hints.currentData()
        ids = {n.uniqueId().toString() for n in nodes}
        if self.hints_picked and keep_hints is not None and keep_hints not in ids:
            self.hints_picked = False          # the chosen layer is gone
        default_hints = None
        if document is not None and not self.hints_picked:
            default_hints = ops.find_hints_layer(document, active) if active is not None else None
            if default_hints is None or ops.same_node(default_hints, active):   # e.g. the hints layer is the active one
                default_hints = next((n for n in nodes if ops.looks_like_hints(n) and not ops.same_node(n, active)),
                                     None)
        wanted_hints = keep_hints if self.hints_picked else (
            default_hints.uniqueId().toString() if default_hints is not None else None)
        for combo, wanted in ((self.hints, wanted_hints), (self.reference, keep_reference)):
            combo.blockSignals(True)
            combo.clear()
            combo.addItem("(none)", None)
            for node in nodes:
                combo.addItem(node.name(), node.uniqueId().toString())
                if wanted is not None and node.uniqueId().toString() == wanted:
                    combo.setCurrentIndex(combo.count() - 1)
            combo.blockSignals(False)

    def chosen(self, document, combo):
        wanted = combo.currentData()
        return next((n for n in document.topLevelNodes() if n.uniqueId().toString() == wanted), None) \
            if wanted else None

    # --- buttons ---

    def start(self, make):
        if self.operation is not None:
            self.show_status("a job is running: cancel it or wait")
            return
        self.connect_now()
        document = self.active_document()
        self.refresh_layers()
        self.operation = make(document)
        self.progress.setValue(0)
        self.preview.clear()
        self.cancel_button.setEnabled(True)
        self.show_status("sent")
        self.timer.start()

    @guarded
    def colorize(self, *_):
        def make(document):
            ops.check_document(document)
            options = self.colorize_options()
            inputs = self.engine_info("colorize").get("inputs")
            return ops.ColorizeOperation(self.client, document, document.activeNode(),
                                         hints=self.chosen(document, self.hints),
                                         reference=self.chosen(document, self.reference),
                                         reference_file=self.reference_file.text() or None, prompt=self.prompt.text(),
                                         engine=self.engine.currentData() or "", seed=self.seed.value(),
                                         options=options,
                                         replace=self.replace.isChecked(), engine_inputs=inputs)
        self.start(make)

    def colorize_options(self):
        """The options the artist set in the fields (those that differ from the defaults), for the engine the fields
        were built for; remembered for that engine."""
        self.build_options()
        options = self.options.values()
        Krita.instance().writeSetting("paintsd", f"options.{self.chosen_engine('colorize')}", json.dumps(options))
        return options

    @guarded
    def undo_preview(self, *_):
        def make(document):
            ops.check_document(document)
            return ops.UndoPreviewOperation(self.client, document, document.activeNode(),
                                            steps=ops.parse_steps(self.steps.text()), count=self.count.value(),
                                            prompt=self.prompt.text(), engine=self.engine.currentData() or "",
                                            seed=self.seed.value(), replace=self.replace.isChecked())
        self.start(make)

    @guarded
    def browse_reference(self, *_):
        path, _ = QFileDialog.getOpenFileName(self, "Reference picture", "", "PNG pictures (*.png)")
        if path:
            self.reference_file.setText(path)

    @guarded
    def cancel(self, *_):
        if self.operation is None:
            return
        try:
            self.operation.cancel()
        except pc.PaintsdError as error:
            # No answer (the daemon went away mid-job): the docker lets the job go, so that new ones can start.
            self.operation.error = ops.OperationError(
                f"cancelled here; the daemon did not answer ({message_of(error)})")
            self.poll()

    # --- progress ---

    @guarded
    def poll(self, *_):
        # Krita's layer operations wait for the image and may run the event loop meanwhile: a poll from there (the
        # timer, the socket notifier) would end a job whose layers are still being added.
        if self.client is None or self.polling:
            return
        self.polling = True
        try:
            self.poll_once()
        finally:
            self.polling = False

    def poll_once(self):
        if self.hello_job is not None:
            self.client.pump()
            if self.hello_job.result is not None:
                hello, self.hello_job = self.hello_job.result.result, None
                self.took_hello(hello)
            elif self.hello_job.failure is not None:
                failure, self.hello_job = self.hello_job.failure, None
                self.disconnected(failure)
        if self.operation is None:
            if self.hello_job is None:
                self.timer.stop()
            return
        operation = self.operation
        try:
            events = operation.poll()
        except (ops.OperationError, pc.PaintsdError) as error:
            operation.error = error
            events = []
        for event in events:
            if event.type == "accepted":
                self.show_status(f"queued as {event.job} (position {event.header.get('queue_position', 0)})")
            elif event.progress:
                p = event.progress
                self.progress.setValue(int(p["fraction"] * 1000))
                eta = f", about {p['eta_s']:.0f} s left" if p.get("eta_s") is not None else ""
                self.show_status(f"{p['stage']} {p['step']}/{p['steps']}{eta}")
                preview = event.preview()
                if preview:
                    image = QImage.fromData(preview, "PNG")
                    self.preview.setPixmap(QPixmap.fromImage(image).scaledToHeight(self.preview.minimumHeight()))
        if operation.done or operation.error is not None:
            self.operation, self.last_operation = None, operation
            self.job_ended_ui()
            if operation.error is not None:
                self.show_status(message_of(operation.error))
            else:
                self.progress.setValue(1000)
                warning = f" (paintsd: {operation.warning})" if operation.warning else ""
                self.show_status("added " + ", ".join(node.name() for node in operation.layers) + warning)
            self.layer_key = None
            self.refresh_layers()

    def job_ended_ui(self):
        if self.hello_job is None:
            self.timer.stop()
        self.cancel_button.setEnabled(False)

    def show_status(self, text):
        self.status_text = text
        self.status.setText(breakable(text))
        self.status.setToolTip(text)
