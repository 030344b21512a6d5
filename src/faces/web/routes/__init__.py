"""The routers of the web app and the links of the navigation bar.

Other packages plug in here: append the module that defines ``router`` (a FastAPI ``APIRouter``) to
``ROUTER_MODULES``, and a :class:`NavLink` to ``NAV_LINKS`` for a page that should appear in the navigation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from fastapi import APIRouter


@dataclass(frozen=True)
class NavLink:
    """One entry of the navigation bar; ``admin_only`` links are shown to administrators only."""

    label: str
    href: str
    admin_only: bool = False
    login_required: bool = True


ROUTER_MODULES: list[str] = [
    "faces.web.routes.auth",
    "faces.web.routes.pages",
    "faces.web.routes.images",
    "faces.web.routes.faces",
    "faces.web.routes.names",
    "faces.web.routes.groups",
    "faces.web.routes.detection",
    "faces.web.routes.uploads",
    "faces.web.routes.sharing",
    "faces.web.routes.admin",
    "faces.web.routes.sync",
]

NAV_LINKS: list[NavLink] = [
    NavLink("Photos", "/"),
    NavLink("People", "/people"),
    NavLink("Groups", "/groups"),
    NavLink("Search", "/search"),
    NavLink("Sharing", "/sharing"),
    NavLink("Photos of me", "/me/photos"),
    NavLink("Statistics", "/stats"),
    NavLink("Backup & sync", "/sync"),
    NavLink("Admin", "/admin", admin_only=True),
]


def routers() -> list[APIRouter]:
    """Every router of ``ROUTER_MODULES``, imported."""
    return [importlib.import_module(name).router for name in ROUTER_MODULES]


def nav_links(user) -> list[NavLink]:  # noqa: ANN001 - faces.store.models.User | None
    """The navigation entries ``user`` (None: nobody logged in) should see."""
    return [link for link in NAV_LINKS
            if (user is not None or not link.login_required) and (not link.admin_only or (user and user.is_admin))]
