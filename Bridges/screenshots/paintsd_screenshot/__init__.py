"""Drives GUI Krita for the README's screenshot: opens the sample line art with its scribbles as a "hints" layer,
presses the paintsd docker's Colorize Layer, grabs the window into $PAINTSD_SHOT and quits. Only for
Bridges/screenshots/take.sh; never installed for users."""
import os

from krita import Extension, Krita
from PyQt5.QtCore import QTimer


class ScreenshotDriver(Extension):
    def setup(self):
        Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(2000, self.open))

    def createActions(self, window):
        pass

    def open(self):
        app, art = Krita.instance(), os.environ["PAINTSD_ART"]
        doc = app.openDocument(os.path.join(art, "umbrella-lineart.png"))
        app.activeWindow().addView(doc)
        w, h = doc.width(), doc.height()
        source = app.openDocument(os.path.join(art, "umbrella-hints.png"))
        hints = doc.createNode("hints", "paintlayer")
        hints.setPixelData(source.topLevelNodes()[0].pixelData(0, 0, w, h), 0, 0, w, h)
        source.close()
        doc.rootNode().addChildNode(hints, None)
        doc.setActiveNode(doc.topLevelNodes()[0])
        docker = next(d for d in app.dockers() if d.objectName() == "paintsd_docker")
        docker.show()
        docker.raise_()
        docker.refresh_layers()
        docker.colorize()
        QTimer.singleShot(6000, self.shoot)

    def shoot(self):
        app = Krita.instance()
        app.activeWindow().qwindow().grab().save(os.environ["PAINTSD_SHOT"])
        for doc in app.documents():
            doc.setModified(False)      # no "save changes?" question on the way out
        QTimer.singleShot(500, lambda: app.action("file_quit").trigger())


Krita.instance().addExtension(ScreenshotDriver(Krita.instance()))
