"""Admin settings: validated, stored in the database, laid over the file/environment settings at once."""

import logging

import pytest

from faces.sharing import admin_settings
from faces.sharing.errors import InvalidRequest
from faces.store.models import Setting


def test_overlay_changes_apply_without_restart(store, settings):
    with store.session() as s:
        assert admin_settings.effective_settings(s, settings).finders["dlib"].min_face_size == 20
        admin_settings.set_setting(s, "finders.dlib.min_face_size", "40", settings)
        admin_settings.set_setting(s, "finders.dlib.model", "CNN", settings)
        admin_settings.set_setting(s, "finders.opencv.enabled", "off", settings)
        admin_settings.set_setting(s, "metadata.write_names", True, settings)
        admin_settings.set_setting(s, "registration_open", "yes", settings)
        admin_settings.set_setting(s, "default_image_visibility", "private", settings)
    with store.session() as s:  # another session, as another process would read it
        eff = admin_settings.effective_settings(s, settings)
    assert eff.finders["dlib"].min_face_size == 40 and eff.finders["dlib"].model == "cnn"
    assert eff.finders["opencv"].enabled is False and eff.metadata.write_names is True
    assert eff.registration_open is True and eff.default_image_visibility == "private"
    assert settings.finders["dlib"].min_face_size == 20 and settings.registration_open is False  # base untouched
    with store.session() as s:
        admin_settings.set_setting(s, "finders.dlib.min_face_size", None, settings)
    with store.session() as s:
        assert admin_settings.effective_settings(s, settings).finders["dlib"].min_face_size == 20


@pytest.mark.parametrize("key,value,message", [
    ("finders.dlib.min_face_size", "big", "whole number"),
    ("finders.dlib.min_face_size", 0, "at least 1"),
    ("finders.dlib.tolerance", 0, "above 0"),
    ("finders.dlib.tolerance", "nan", "above 0"),
    ("finders.dlib.model", "resnet", "hog, cnn"),
    ("finders.nope.enabled", True, "no finder named"),
    ("log_level", "LOUD", "DEBUG, INFO"),
    ("default_write", "everyone", "owner, contacts"),
    ("registration_open", "maybe", "on or off"),
    ("secret_key", "x", "no admin setting"),
])
def test_bad_values_are_refused_plainly(key, value, message):
    with pytest.raises(InvalidRequest, match=message):
        admin_settings.validate(key, value, ["dlib", "opencv"])


def test_a_refused_value_is_not_stored(store, settings):
    with store.session() as s:
        with pytest.raises(InvalidRequest):
            admin_settings.set_setting(s, "finders.dlib.min_face_size", -3, settings)
        assert admin_settings.overrides(s) == {}


def test_a_bad_stored_row_is_skipped(store, settings):
    with store.session() as s:
        s.add(Setting(key="finders.dlib.tolerance", value="wide"))
        s.add(Setting(key="finders.dlib.upsample", value=3))
        s.add(Setting(key="finders.dlib.min_face_size", value=30))
    with store.session() as s:
        eff = admin_settings.effective_settings(s, settings)
    assert eff.finders["dlib"].tolerance == settings.finders["dlib"].tolerance
    assert eff.finders["dlib"].min_face_size == 30


def test_log_level_applies_in_this_process(store, settings):
    logger = logging.getLogger("faces")
    before = logger.level
    try:
        with store.session() as s:
            admin_settings.set_setting(s, "log_level", "debug", settings)
        assert logger.level == logging.DEBUG
        with store.session() as s:
            assert admin_settings.effective_settings(s, settings).log_level == "DEBUG"
    finally:
        logger.setLevel(before)


def test_the_stored_log_level_applies_when_a_command_starts(store, settings, monkeypatch):
    """A log level chosen in the page outlives a restart: every command (and `faces serve`) starts with it."""
    from faces.cli import context

    logger = logging.getLogger("faces")
    before = logger.level
    try:
        with store.session() as s:
            admin_settings.set_setting(s, "log_level", "warning", settings)
        logger.setLevel(logging.INFO)  # as a fresh process starts
        monkeypatch.setattr(context, "open_store", lambda _settings: store)
        monkeypatch.setitem(context._state, "settings", settings)
        monkeypatch.setitem(context._state, "store", None)
        assert context.store() is store
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(before)
