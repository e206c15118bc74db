"""paintsd_krita.docker: the paintsd docker: Colorize Layer and Undo Preview buttons, fields filled from the daemon's
hello, a progress bar with live previews, Cancel, and the endpoint setting. Jobs are polled from a QTimer and a
QSocketNotifier, so Krita stays responsive; errors show in the docker as text."""
from krita import DockWidget, Krita
from PyQt5.QtCore import QSocketNotifier, QTimer
from PyQt5.QtGui import QImage, QPixmap
from PyQt5.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                             QPushButton, QSpinBox, QDoubleSpinBox, QVBoxLayout, QWidget)

from . import operations as ops
from .operations import pc

SETTINGS = ("paintsd", "endpoint")


class PaintsdDocker(DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("paintsd")
        self.client = None
        self.notifier = None
        self.operation = None
        self.timer = QTimer(self)
        self.timer.setInterval(100)
        self.timer.timeout.connect(self.poll)

        root = QWidget(self)
        layout = QVBoxLayout(root)
        form = QFormLayout()
        self.endpoint = QLineEdit(Krita.instance().readSetting(*SETTINGS, "") or pc.default_endpoint())
        self.endpoint.editingFinished.connect(self.reconnect)
        self.engine = QComboBox()
        self.prompt = QLineEdit()
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2 ** 31 - 1)
        self.seed.setValue(-1)
        self.seed.setSpecialValueText("random")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(0.6)
        self.hints = QComboBox()
        self.reference = QComboBox()
        self.reference_file = QLineEdit()
        self.reference_file.setPlaceholderText("or a PNG file")
        browse = QPushButton("...")
        browse.clicked.connect(self.browse_reference)
        reference_row = QHBoxLayout()
        reference_row.addWidget(self.reference_file)
        reference_row.addWidget(browse)
        self.steps = QLineEdit()
        self.steps.setPlaceholderText("400, 600, 800, 900, 950, 999")
        self.count = QSpinBox()
        self.count.setRange(0, 64)
        self.count.setSpecialValueText("use the steps")
        form.addRow("Daemon", self.endpoint)
        form.addRow("Engine", self.engine)
        form.addRow("Prompt", self.prompt)
        form.addRow("Seed", self.seed)
        form.addRow("Strength", self.strength)
        form.addRow("Hints layer", self.hints)
        form.addRow("Reference", self.reference)
        form.addRow("", reference_row)
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
        for b in (self.colorize_button, self.undo_button, self.cancel_button):
            buttons.addWidget(b)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        layout.addWidget(self.progress)
        self.preview = QLabel()
        self.preview.setMinimumHeight(96)
        layout.addWidget(self.preview)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self.setWidget(root)
        QTimer.singleShot(0, self.reconnect)

    # --- daemon ---

    def reconnect(self):
        Krita.instance().writeSetting(*SETTINGS, self.endpoint.text())
        if self.client is not None:
            if self.notifier is not None:
                self.notifier.setEnabled(False)
            self.client.close()
        self.client = pc.Client(self.endpoint.text() or None)
        self.notifier = QSocketNotifier(self.client.fileno(), QSocketNotifier.Read, self)
        self.notifier.activated.connect(self.poll)
        try:
            hello = self.client.hello(timeout=2.0)
        except pc.PaintsdError as error:
            self.show_status(str(error.message))
            return
        self.engines = {e["name"]: e for e in hello["engines"]}
        self.defaults = hello["defaults"]
        self.engine.clear()
        self.engine.addItem("(default)", "")
        for name, engine in self.engines.items():
            if "colorize" in engine["methods"] or "undo.preview" in engine["methods"]:
                self.engine.addItem(f"{name} ({engine['status']})", name)
        self.show_status(f"paintsd {hello['daemon']['version']} at {self.endpoint.text()}")

    def engine_takes(self, method, option):
        name = self.engine.currentData() or self.defaults.get(method, "")
        capabilities = self.engines.get(name, {}).get("capabilities", {}).get(method, {})
        return option in capabilities.get("options", {})

    # --- layers ---

    def canvasChanged(self, canvas):
        self.refresh_layers()

    def refresh_layers(self):
        document = Krita.instance().activeDocument()
        for combo in (self.hints, self.reference):
            combo.clear()
            combo.addItem("(none)", None)
        if document is None:
            return
        active = document.activeNode()
        default_hints = ops.find_hints_layer(document, active) if active is not None else None
        if default_hints is None:     # e.g. the hints layer itself is the active one
            default_hints = next((n for n in document.topLevelNodes() if ops.looks_like_hints(n)), None)
        for node in document.topLevelNodes():
            self.hints.addItem(node.name(), node.uniqueId())
            self.reference.addItem(node.name(), node.uniqueId())
            if default_hints is not None and node.uniqueId() == default_hints.uniqueId():
                self.hints.setCurrentIndex(self.hints.count() - 1)

    def chosen(self, document, combo):
        wanted = combo.currentData()
        return next((n for n in document.topLevelNodes() if n.uniqueId() == wanted), None) if wanted else None

    # --- buttons ---

    def start(self, make):
        if self.operation is not None and not self.operation.done:
            self.show_status("a job is running: cancel it or wait")
            return
        if self.client is None:
            self.reconnect()
        try:
            self.operation = make(Krita.instance().activeDocument())
        except (ops.OperationError, pc.PaintsdError) as error:
            self.show_status(str(error))
            return
        self.progress.setValue(0)
        self.preview.clear()
        self.cancel_button.setEnabled(True)
        self.show_status("sent")
        self.timer.start()

    def colorize(self):
        def make(document):
            ops.check_document(document)
            options = {"strength": self.strength.value()} if self.engine_takes("colorize", "strength") else {}
            return ops.ColorizeOperation(self.client, document, document.activeNode(),
                                         hints=self.chosen(document, self.hints),
                                         reference=self.chosen(document, self.reference),
                                         reference_file=self.reference_file.text() or None, prompt=self.prompt.text(),
                                         engine=self.engine.currentData() or "", seed=self.seed.value(), options=options)
        self.start(make)

    def undo_preview(self):
        def make(document):
            ops.check_document(document)
            return ops.UndoPreviewOperation(self.client, document, document.activeNode(),
                                            steps=ops.parse_steps(self.steps.text()), count=self.count.value(),
                                            prompt=self.prompt.text(),
                                            engine=self.engine.currentData() or "", seed=self.seed.value())
        self.start(make)

    def browse_reference(self):
        path, _ = QFileDialog.getOpenFileName(self, "Reference picture", "", "PNG pictures (*.png)")
        if path:
            self.reference_file.setText(path)

    def cancel(self):
        if self.operation is not None:
            try:
                self.operation.cancel()
            except pc.PaintsdError as error:
                self.show_status(str(error))

    # --- progress ---

    def poll(self, *_):
        if self.operation is None:
            return
        try:
            events = self.operation.poll()
        except (ops.OperationError, pc.PaintsdError) as error:
            self.operation.error = error
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
                    self.preview.setPixmap(QPixmap.fromImage(image).scaledToHeight(96))
        if self.operation.done:
            self.timer.stop()
            self.cancel_button.setEnabled(False)
            if self.operation.error is not None:
                error = self.operation.error
                self.show_status(error.message if isinstance(error, pc.PaintsdError) else str(error))
            else:
                self.progress.setValue(1000)
                self.show_status("added " + ", ".join(node.name() for node in self.operation.layers))
                self.refresh_layers()

    def show_status(self, text):
        self.status.setText(text)
