"""Event subscribers of portability: when images arrive, attach the imported or synced faces and marks that
were waiting for them (``pending_imports``)."""

from __future__ import annotations

import logging

from sqlalchemy import exists, select

from faces import events
from faces.store.models import PendingImport

log = logging.getLogger(__name__)


def _images_added(owner_id: int, image_ids: list[int], store=None, settings=None, **_ignored) -> None:  # noqa: ANN001
    if store is None or not image_ids:
        return
    from faces.portability.apply import attach_pending

    with store.session() as session:
        if not session.scalar(select(exists().where(PendingImport.owner_id == owner_id))):
            return
        if settings is not None:
            try:
                from faces.sharing.admin_settings import effective_settings

                settings = effective_settings(session, settings)
            except ImportError:
                pass
        result = attach_pending(session, settings, owner_id, list(image_ids))
    if result.faces or result.marks:
        log.info("attached %d waiting faces and %d marks to new images of library %s", result.faces, result.marks,
                 owner_id)


events.subscribe("images_added", _images_added)
