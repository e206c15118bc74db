"""paintsd_krita: the Krita plug-in of paintsd: a docker with Colorize Layer and Undo Preview, and two shortcuts."""
import sys
import traceback

from krita import DockWidgetFactory, DockWidgetFactoryBase, Extension, Krita

from .docker import PaintsdDocker

DOCKER_ID = "paintsd_docker"


class PaintsdExtension(Extension):
    def setup(self):
        pass

    def createActions(self, window):
        for action_id, text, slot in (("paintsd_colorize", "Colorize Layer (paintsd)", "colorize"),
                                      ("paintsd_undo_preview", "Undo Preview (paintsd)", "undo_preview")):
            action = window.createAction(action_id, text, "tools/scripts")
            action.triggered.connect(lambda checked=False, slot=slot: self.trigger(slot))

    def trigger(self, slot):
        """A shortcut presses the docker's button (its slots show their own errors); never a traceback dialog."""
        try:
            for docker in Krita.instance().dockers():
                if docker.objectName() == DOCKER_ID and isinstance(docker, PaintsdDocker):
                    getattr(docker, slot)()
                    return
        except Exception:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)


Krita.instance().addExtension(PaintsdExtension(Krita.instance()))
Krita.instance().addDockWidgetFactory(DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, PaintsdDocker))
