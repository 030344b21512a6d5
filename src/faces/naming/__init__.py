"""Naming faces: the actions on faces and names (``actions``) and the incremental guess refresh (``refresh``)."""

from faces.naming.refresh import clear_cache as invalidate_cache

__all__ = ["invalidate_cache"]
