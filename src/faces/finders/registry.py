"""The finders faces knows, by name, and the ones that are enabled and can run."""

from __future__ import annotations

import importlib

from faces.config import Settings
from faces.finders.base import Finder, SelfCheck

# name -> "module:Class"; imported lazily so that a broken library only disables its own finder
FINDERS: dict[str, str] = {
    "dlib": "faces.finders.dlib_finder:DlibFinder",
    "opencv": "faces.finders.opencv_finder:OpenCVFinder",
}


def finder_class(name: str) -> type[Finder]:
    """The class of finder ``name``. Raises KeyError for an unknown name, ImportError if its module fails."""
    module_name, class_name = FINDERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_finder(name: str, settings: Settings) -> Finder:
    """A new, not yet loaded, finder ``name`` with its settings from ``settings.finders``."""
    return finder_class(name)(settings.finders[name])


def self_check(name: str, settings: Settings, thorough: bool = False) -> SelfCheck:
    """The self check of finder ``name``; a finder whose module cannot even be imported reports why.
    ``thorough``: see :meth:`faces.finders.base.Finder.self_check`."""
    try:
        return create_finder(name, settings).self_check(thorough)
    except Exception as exc:  # noqa: BLE001 - any import failure disables just this finder
        return SelfCheck(finder=name, ok=False, reason=f"cannot be imported: {exc}")


def enabled_finders(settings: Settings) -> list[Finder]:
    """The finders that are enabled in ``settings`` and whose self check passes, in registry order."""
    result = []
    for name in FINDERS:
        conf = settings.finders.get(name)
        if conf is None or not conf.enabled:
            continue
        if self_check(name, settings).ok:
            result.append(create_finder(name, settings))
    return result
