"""Backup and clone sync in the page and the API: export the library to a file, import a file, tokens for
clones, peers, "sync now", and the pull endpoint a clone calls (``GET /api/sync/changes``, authenticated by a
token the owner created, not by a session: no cookie, so no CSRF)."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from faces.portability import exchange, records
from faces.portability import sync as portability_sync
from faces.web.deps import AdminUser, CurrentUser, DbSession, LoggedInUser, State, render, settings_for

router = APIRouter(tags=["sync"])


class TokenIn(BaseModel):
    label: str = Field("", max_length=200)


class PeerIn(BaseModel):
    url: str = Field(max_length=2000)
    token: str = Field(max_length=200)


@router.get("/sync", include_in_schema=False)
def sync_page(request: Request, user: CurrentUser):
    """The page: export/import buttons, tokens, peers and their state."""
    if user is None:
        from fastapi.responses import RedirectResponse

        return RedirectResponse("/login?next=/sync", status_code=303)
    return render(request, "sync.html", user)


@router.get("/api/sync/changes")
def changes(request: Request, db: DbSession, state: State, since: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=portability_sync.MAX_BATCH)] = portability_sync.BATCH) -> dict:
    """The changes of the token's library after ``since`` (for a clone; ``Authorization: Bearer <token>``)."""
    header = request.headers.get("authorization") or ""
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    owner_id = portability_sync.token_owner(db, token)
    if owner_id is None:
        raise HTTPException(401, "This sync token is not valid here.", headers={"WWW-Authenticate": "Bearer"})
    return portability_sync.changes_since(db, owner_id, since, limit, records.server_id(state.settings.data_dir))


@router.get("/api/sync/status")
def status(db: DbSession, state: State, user: LoggedInUser) -> dict:
    """The logged-in user's peers and tokens (never the tokens themselves)."""
    result = portability_sync.sync_state(db, user.id)
    result["token_list"] = portability_sync.list_tokens(db, user.id)
    result["server_id"] = records.server_id(state.settings.data_dir)
    result["interval"] = settings_for(db, state).sync_interval
    return result


@router.post("/api/sync/tokens")
def new_token(body: TokenIn, db: DbSession, user: LoggedInUser) -> dict:
    """Create a token for a clone of the user's library; it is shown this once."""
    return {"token": portability_sync.create_token(db, user.id, body.label)}


@router.delete("/api/sync/tokens/{token_id}")
def delete_token(token_id: int, db: DbSession, user: LoggedInUser) -> dict:
    if not portability_sync.revoke_token(db, user.id, token_id):
        raise HTTPException(404, "There is no such token.")
    return {"ok": True}


@router.post("/api/sync/peers")
def new_peer(body: PeerIn, db: DbSession, user: LoggedInUser) -> dict:
    """Add (or give a new token to) a clone to pull from."""
    try:
        peer = portability_sync.add_peer(db, user.id, body.url, body.token)
    except portability_sync.SyncError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": peer.id, "url": peer.url}


@router.delete("/api/sync/peers/{peer_id}")
def delete_peer(peer_id: int, db: DbSession, user: LoggedInUser) -> dict:
    if not portability_sync.remove_peer(db, user.id, peer_id):
        raise HTTPException(404, "There is no such peer.")
    return {"ok": True}


@router.post("/api/sync/now")
def sync_now(state: State, user: LoggedInUser) -> dict:
    """Pull from every peer of the user's library now."""
    with state.store.session() as session:
        settings = settings_for(session, state)
    return {"results": portability_sync.sync_owner(state.store, settings, user.id)}


@router.get("/api/library/export")
def export_file(db: DbSession, state: State, user: LoggedInUser) -> Response:
    """The user's library as an export file (gzip-compressed JSON)."""
    document = exchange.export_library(db, user.id, records.server_id(state.settings.data_dir))
    buffer = io.BytesIO()
    exchange.write_export(document, buffer)
    name = f"faces-{user.username}-{document['exported_at'][:10]}.json.gz"
    return Response(buffer.getvalue(), media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.post("/api/library/import")
def import_file(state: State, user: LoggedInUser, file: UploadFile = File(...)) -> dict:
    """Import an export file into the user's library (one transaction; a refused file changes nothing)."""
    data = file.file.read(exchange.MAX_FILE_BYTES + 1)
    try:
        document = exchange.read_export(data)
        with state.store.session() as session:
            result = exchange.import_library(session, settings_for(session, state), user.id, document)
    except exchange.ImportRefused as exc:
        raise HTTPException(422, f"This file was not imported, nothing changed: {exc}") from None
    return result.as_dict()


@router.get("/api/admin/sync")
def admin_sync_state(db: DbSession, state: State, _admin: AdminUser) -> dict:
    """Every library's clone sync state, for the admin page."""
    result = portability_sync.sync_state(db)
    result["server_id"] = records.server_id(state.settings.data_dir)
    result["interval"] = settings_for(db, state).sync_interval
    return result
