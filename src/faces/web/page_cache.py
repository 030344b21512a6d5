"""Serialized gallery pages, kept in memory until the database's data version changes.

A page is stored with the :mod:`faces.store.data_version` counter read in the same transaction before the page's
own rows; it is served again only while the counter still has that value, i.e. while no process (another
``--workers`` process, a scan, a clone sync, the CLI) has committed a write to images, image_finders, faces or
names since. Keys hold the user's id: a page is only ever served to the user it was built for. The ETag is a
checksum of the body, so a browser's ``If-None-Match`` gets 304 when it already holds these bytes.
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """A serialized page: its JSON ``body``, its ``etag`` (quoted) and the data ``version`` it was read at."""

    body: bytes
    etag: str
    version: int | None


def page_of(body: bytes, version: int | None) -> Page:
    """``body`` with its ETag: its CRC-32 and length, like a web server's size-and-time ETag. A page that changed
    keeps its ETag by chance once in 4 billion times (then a browser shows the page before the change until the
    next one); a cryptographic hash would cost about as much as a cached page's whole answer."""
    return Page(body, f'"{zlib.crc32(body):08x}-{len(body):x}"', version)


class PageCache:
    """Least recently used pages up to ``max_bytes`` (bodies, keys and bookkeeping); safe to use from several
    threads. Keys count too: a key may hold a long query (many name ids), and a small page must not keep one for
    free."""

    ENTRY_BYTES = 300  # the dict entry, the Page and its ETag, roughly

    def __init__(self, max_bytes: int = 32 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._pages: OrderedDict[Hashable, tuple[Page, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, version: int | None) -> Page | None:
        """The page of ``key`` if it was read at data version ``version`` (never when ``version`` is None)."""
        if version is None:
            return None
        with self._lock:
            found = self._pages.get(key)
            if found is None or found[0].version != version:
                return None
            self._pages.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, page: Page) -> Page:
        """Keep ``page`` under ``key`` (a page without a version is not kept); returns it."""
        size = len(page.body) + len(repr(key)) + self.ENTRY_BYTES
        if page.version is None or size > self.max_bytes // 4:
            return page
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._pages[key] = (page, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._pages.popitem(last=False)
                self._bytes -= dropped
        return page

    def __len__(self) -> int:
        return len(self._pages)
