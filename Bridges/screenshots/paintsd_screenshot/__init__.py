"""Drives GUI Krita for the README's screenshot: opens the sample line art with its scribbles as a "hints" layer,
presses the paintsd docker's Colorize Layer, grabs the window into $PAINTSD_SHOT and quits. Only for
Bridges/screenshots/take.sh; never installed for users."""
import os
import sys

from krita import Extension, Krita
from PyQt5.QtCore import Qt, QTimer


class ScreenshotDriver(Extension):
    def setup(self):
        Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(2000, self.open))

    def createActions(self, window):
        pass

    def open(self):
        app, art = Krita.instance(), os.environ["PAINTSD_ART"]
        window = app.activeWindow().qwindow()
        window.setGeometry(0, 0, 1600, 1000)         # the whole virtual screen (there is no window manager)
        # Room for the docker: of the default workspace's right-hand dockers, only Layers stays.
        for other in app.dockers():
            if other.objectName() not in ("paintsd_docker", "KisLayerBox") and window.dockWidgetArea(other) == Qt.RightDockWidgetArea:
                other.hide()
        doc = app.openDocument(os.path.join(art, "umbrella-lineart.png"))
        app.activeWindow().addView(doc)
        w, h = doc.width(), doc.height()
        source = app.openDocument(os.path.join(art, "umbrella-hints.png"))
        hints = doc.createNode("hints", "paintlayer")
        hints.setPixelData(source.topLevelNodes()[0].pixelData(0, 0, w, h), 0, 0, w, h)
        source.close()
        doc.rootNode().addChildNode(hints, None)
        docker = next(d for d in app.dockers() if d.objectName() == "paintsd_docker")
        docker.show()
        docker.raise_()
        layers = next((d for d in app.dockers() if d.objectName() == "KisLayerBox"), None)
        if layers is not None:
            window.resizeDocks([layers, docker], [260, 700], Qt.Vertical)
        # Krita activates the added layer from its event loop: the line art is made active after that.
        QTimer.singleShot(500, lambda: self.colorize(doc, docker))

    def colorize(self, doc, docker):
        doc.setActiveNode(doc.topLevelNodes()[0])
        QTimer.singleShot(1500, docker.colorize)      # the docker's layer list follows by itself meanwhile
        QTimer.singleShot(8000, self.shoot)

    def shoot(self):
        app = Krita.instance()
        action = app.action("paintsd_colorize")     # its shortcut comes from the .action file install.sh put in place
        print("paintsd_colorize shortcut:", action.shortcut().toString() if action else None, file=sys.stderr, flush=True)
        app.activeWindow().qwindow().grab().save(os.environ["PAINTSD_SHOT"])
        for doc in app.documents():
            doc.setModified(False)      # no "save changes?" question on the way out
        QTimer.singleShot(500, lambda: app.action("file_quit").trigger())


Krita.instance().addExtension(ScreenshotDriver(Krita.instance()))
