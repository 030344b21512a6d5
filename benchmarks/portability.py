"""What do the change log, export, import and a clone's first sync cost? Synthetic SQLite library.

Usage (from the project root, in the venv):

    python benchmarks/portability.py                # 5,000 faces in 2,500 images, 50 names
    python benchmarks/portability.py --faces 20000

Measures, side by side in one run (the machine is shared and noisy: compare the columns of one run):
- writing the faces (one transaction per image, as detection does) with the change log off (baseline) and on;
- naming every face (one transaction per 100 faces) with the log on;
- export to a gzip file (size, seconds), import into an empty database with the same images, import again;
- a clone's first pull of the whole change log (the endpoint's answer built and applied in batches of 500,
  in-process: no HTTP).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from faces.portability import changes, exchange
from faces.portability.apply import Applier
from faces.portability.sync import changes_since
from faces.store.db import Store
from faces.store.models import ChangeLogEntry, Embedding, Face, FaceState, FinderStatus, Image, ImageFinder, Name, User


def _images(store: Store, owner: int, count: int) -> list[int]:
    with store.session() as s:
        rows = [Image(owner_id=owner, content_hash=f"{i:064x}", path=f"/p/{i}.jpg", width=4000, height=3000)
                for i in range(count)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _faces(store: Store, owner: int, image_ids: list[int], per_image: int, log: bool, rng) -> float:
    start = time.perf_counter()
    for image_id in image_ids:
        with store.session() as s:
            if not log:
                s.info[changes.SUPPRESS] = True
            s.add(ImageFinder(image_id=image_id, finder="dlib", status=FinderStatus.DONE, model_version="m"))
            for k in range(per_image):
                face = Face(owner_id=owner, image_id=image_id, x=100 + 300 * k, y=100, w=200, h=200, score=0.99)
                face.embeddings.append(Embedding(finder="dlib", model_version="m",
                                                 vector=rng.standard_normal(128).astype(np.float32).tobytes()))
                s.add(face)
            s.flush()
            s.info.pop(changes.SUPPRESS, None)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--faces", type=int, default=5000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    images = args.faces // 2
    with tempfile.TemporaryDirectory() as tmp:
        a = Store(f"sqlite:///{Path(tmp) / 'a.db'}")
        base = Store(f"sqlite:///{Path(tmp) / 'base.db'}")
        for store in (a, base):
            with store.session() as s:
                s.add(User(username="alice"))
        t_base = _faces(base, 1, _images(base, 1, images), 2, False, rng)
        t_log = _faces(a, 1, _images(a, 1, images), 2, True, rng)
        print(f"write {args.faces} faces, one transaction per image: log off {t_base:.1f} s, "
              f"log on {t_log:.1f} s (x{t_log / t_base:.2f})")
        start = time.perf_counter()
        with a.session() as s:
            names = [Name(owner_id=1, name=f"Person {i}") for i in range(50)]
            s.add_all(names)
            s.flush()
            ids = [n.id for n in names]
        face_ids = list(range(1, args.faces + 1))
        for chunk in range(0, len(face_ids), 100):
            with a.session() as s:
                for face in s.scalars(select(Face).where(Face.id.in_(face_ids[chunk:chunk + 100]))):
                    face.state, face.name_id = FaceState.CONFIRMED, ids[face.id % 50]
        print(f"name every face (100 per transaction, log on): {time.perf_counter() - start:.1f} s")
        with a.session() as s:
            entries = s.scalar(select(func.count()).select_from(ChangeLogEntry))
        start = time.perf_counter()
        with a.session() as s:
            document = exchange.export_library(s, 1, "a" * 32)
        buffer = io.BytesIO()
        exchange.write_export(document, buffer)
        t_export = time.perf_counter() - start
        print(f"export: {t_export:.1f} s, {len(buffer.getvalue()) / 1e6:.1f} MB gzip")
        b = Store(f"sqlite:///{Path(tmp) / 'b.db'}")
        with b.session() as s:
            s.add(User(username="alice"))
        _images(b, 1, images)
        start = time.perf_counter()
        parsed = exchange.read_export(buffer.getvalue())
        with b.session() as s:
            result = exchange.import_library(s, None, 1, parsed)
        t_import = time.perf_counter() - start
        start = time.perf_counter()
        with b.session() as s:
            again = exchange.import_library(s, None, 1, parsed)
        t_again = time.perf_counter() - start
        print(f"import into an empty library: {t_import:.1f} s ({result.applied.faces} faces); "
              f"again: {t_again:.1f} s (unchanged: {again.unchanged})")
        c = Store(f"sqlite:///{Path(tmp) / 'c.db'}")
        with c.session() as s:
            s.add(User(username="alice"))
        _images(c, 1, images)
        start, cursor, applied = time.perf_counter(), 0, 0
        while True:
            with a.session() as s:
                answer = changes_since(s, 1, cursor, 500, "a" * 32)
            with c.session() as s:
                applier = Applier(s, 1, origin="a" * 32)
                for e in answer["entries"]:
                    applier.entry(e["entity"], e["key"], e["op"], e["data"], e["changed_at"], None)
                    applied += 1
                applier.finish(None)
            cursor = answer["last"]
            if not answer["more"]:
                break
        t_pull = time.perf_counter() - start
        print(f"first pull of {entries} log entries ({applied} applied): {t_pull:.1f} s "
              f"({applied / t_pull:.0f} entries/s)")


if __name__ == "__main__":
    main()
