"""Logging to ``faces.log`` in the data directory, rotated, at the configured level.

Never log passwords, tokens, embeddings or face names at INFO level or above.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def setup_logging(data_dir: Path, level: str = "INFO") -> Path:
    """Send the ``faces`` loggers to ``data_dir/faces.log`` (10 MB x 5 files). Returns the log file path.

    Calling it again (another data directory or level) replaces the previous handler.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "faces.log"
    logger = logging.getLogger("faces")
    for handler in list(logger.handlers):
        if getattr(handler, "_faces_handler", False):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=10_000_000, backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler._faces_handler = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    return path
