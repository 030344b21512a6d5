"""The HTML pages. Each is a template plus a JavaScript module that talks to the JSON API."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from faces.web.deps import CurrentUser, DbSession, name_for, render

router = APIRouter(include_in_schema=False)


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@router.get("/")
def gallery_page(request: Request, user: CurrentUser):
    if user is None:
        return _login_redirect(request)
    return render(request, "gallery.html", user, page="gallery")


@router.get("/search")
def search_page(request: Request, user: CurrentUser):
    if user is None:
        return _login_redirect(request)
    return render(request, "gallery.html", user, page="search")


@router.get("/people")
def people_page(request: Request, user: CurrentUser):
    if user is None:
        return _login_redirect(request)
    return render(request, "people.html", user)


@router.get("/people/{name_id}")
def person_page(request: Request, name_id: int, user: CurrentUser, db: DbSession):
    if user is None:
        return _login_redirect(request)
    name = name_for(db, user, name_id)
    return render(request, "gallery.html", user, page="person", person=name)


@router.get("/groups")
def groups_page(request: Request, user: CurrentUser):
    if user is None:
        return _login_redirect(request)
    return render(request, "groups.html", user)


@router.get("/account")
def account_page(request: Request, user: CurrentUser):
    if user is None:
        return _login_redirect(request)
    return render(request, "account.html", user)
