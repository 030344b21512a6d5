"""The admin page and its API: finders on or off with their settings and self checks, names in files
(exiftool) with its check, log level, default permissions, registration, statistics of every user, and the
deletion of everybody's faces and names. Values are stored in the database (``faces.sharing.admin_settings``)
and apply without a restart."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from faces.sharing import admin_settings, deletion, stats
from faces.sharing.errors import InvalidRequest, SharingError
from faces.web.deps import AdminUser, CurrentUser, DbSession, State, render, web_state
from faces.web.routes.sharing import DeletedOut, http_error


async def _remember_settings(request: Request) -> None:
    admin_settings.set_base_settings(web_state(request).settings)


router = APIRouter(tags=["admin"], dependencies=[Depends(_remember_settings)])
CHECK_SECONDS = 600.0  # self checks hash the model files: keep their result this long unless asked again
CONFIRM_ALL = "delete all faces"


class SettingsIn(BaseModel):
    """Admin settings to change, key -> value (null: back to the file/environment value)."""

    values: dict[str, Any] = Field(max_length=100)


class ConfirmAllIn(BaseModel):
    confirm: str = Field(description=f"The words '{CONFIRM_ALL}', to confirm.", max_length=64)


def _cached(state, key: tuple, compute, recheck: bool):  # noqa: ANN001
    cache = state.extra.setdefault("admin_checks", {})
    hit = cache.get(key)
    if hit is None or recheck or time.monotonic() - hit[0] > CHECK_SECONDS:
        hit = (time.monotonic(), compute())
        cache[key] = hit
    return hit[1]


def _finder_check(state, name: str, settings, recheck: bool) -> dict:  # noqa: ANN001
    from faces.finders.registry import self_check

    conf = settings.finders[name]
    return _cached(state, ("finder", name, conf.model), lambda: asdict(self_check(name, settings, thorough=True)), recheck)


def _exiftool_check(state, recheck: bool) -> dict:  # noqa: ANN001
    def compute() -> dict:
        try:
            from faces.metadata.exiftool import self_check
        except Exception as exc:  # noqa: BLE001 - a broken metadata package disables the feature
            return {"ok": False, "reason": f"the metadata package cannot be imported: {exc}"}
        return self_check()

    return _cached(state, ("exiftool",), compute, recheck)


def _settings_out(db, state, recheck: bool = False) -> dict:  # noqa: ANN001
    eff = admin_settings.effective_settings(db, state.settings)
    finders = []
    for name, conf in eff.finders.items():
        finders.append({"name": name, "enabled": conf.enabled, "min_face_size": conf.min_face_size,
                        "score_threshold": conf.score_threshold, "tolerance": conf.tolerance, "model": conf.model,
                        "models": list(admin_settings.MODELS.get(name, (conf.model,))),
                        "check": _finder_check(state, name, eff, recheck)})
    return {
        "finders": finders,
        "metadata": {"write_names": eff.metadata.write_names, "sidecar": eff.metadata.sidecar,
                     "read_regions": eff.metadata.read_regions, "check": _exiftool_check(state, recheck)},
        "log_level": eff.log_level.upper(),
        "default_view": eff.default_view,
        "default_write": eff.default_write,
        "default_image_visibility": eff.default_image_visibility,
        "registration_open": eff.registration_open,
        "choices": {key: list(values) for key, values in admin_settings.CHOICES.items()},
        "overrides": admin_settings.overrides(db),
    }


@router.get("/api/admin/settings")
def get_admin_settings(admin: AdminUser, db: DbSession, state: State, recheck: bool = False) -> dict:
    """Every admin setting as it applies now, with the finders' and exiftool's self checks
    (``recheck=true`` runs them again)."""
    return _settings_out(db, state, recheck)


@router.put("/api/admin/settings")
def put_admin_settings(body: SettingsIn, admin: AdminUser, db: DbSession, state: State) -> dict:
    """Change admin settings (all or none). Turning on a finder or exiftool that cannot run is refused."""
    current = admin_settings.effective_settings(db, state.settings)
    try:
        for key, value in body.values.items():
            stored = admin_settings.set_setting(db, key, value, state.settings)
            if stored is True and key.startswith("finders.") and key.endswith(".enabled"):
                name = key.split(".")[1]
                check = _finder_check(state, name, current, recheck=False)
                if not check["ok"]:
                    raise InvalidRequest(f"the finder {name} cannot run here: {check['reason']}")
            if stored is True and key in ("metadata.write_names", "metadata.read_regions"):
                check = _exiftool_check(state, recheck=False)
                if not check["ok"]:
                    raise InvalidRequest(f"names in files need exiftool: {check['reason']}")
    except SharingError as exc:  # the request's transaction is rolled back: nothing changed
        raise http_error(exc) from None
    return _settings_out(db, state)


@router.get("/api/admin/stats")
def get_admin_stats(admin: AdminUser, db: DbSession) -> list[dict]:
    """The statistics of every user's library."""
    return stats.admin_stats(db)


@router.post("/api/admin/delete-faces", response_model=DeletedOut)
def delete_everybodys_faces(body: ConfirmAllIn, admin: AdminUser, db: DbSession, state: State) -> DeletedOut:
    """Delete the faces and names of every library (the photos stay). Confirm with the words 'delete all faces'."""
    if body.confirm.strip().lower() != CONFIRM_ALL:
        raise HTTPException(400, f"Type '{CONFIRM_ALL}' to confirm; nothing was deleted.")
    try:
        report = deletion.delete_all_faces(db, state.settings)
    except SharingError as exc:
        raise http_error(exc) from None
    return DeletedOut(**report.__dict__)


@router.get("/admin", include_in_schema=False)
def admin_page(request: Request, user: CurrentUser):
    if user is None:
        return RedirectResponse("/login?next=%2Fadmin", status_code=303)
    if not user.is_admin:
        raise HTTPException(403, "Only an administrator may open this page.")
    return render(request, "admin.html", user)
