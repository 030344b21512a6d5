"""How long does guessing take in a huge library? Synthetic: N named faces, Q new faces to guess.

Usage (from the project root, in the venv):

    python benchmarks/guess_scale.py                       # N = 100k, 250k, 1M; Q = 10k; exact and usearch
    python benchmarks/guess_scale.py --sizes 1000000 --methods usearch
    python benchmarks/guess_scale.py --refresh 100000      # one naming action in a 100k-face SQLite library

Faces are random unit vectors around synthetic identities (about 50 faces per identity, dlib-like distances:
same person ~0.4, different ~1.4, tolerance 0.6). Half the new faces are of known identities, half strangers.
"exact" is the block matrix product of ``faces.recognition.vectors.radius_pairs``; "usearch" builds an HNSW
index (f16) once and searches the 32 nearest neighbours. Both feed the same rules (``guess_names``); the report
gives build and guess times, and how many guesses agree with the exact ones. The machine is shared and noisy:
compare the columns of one run, not runs of different days.

``--refresh N`` builds a SQLite library with N faces (half named), then times one ``set_name`` action (which
refreshes the guesses it affects): the first with cold caches, then with the embeddings and faces cached in
memory (``--full`` also times a full ``faces guess``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from faces.recognition.guess import Channel, GuessRules, guess_names
from faces.recognition.vectors import prepare

DIM = 128
PER_IDENTITY = 50


def synthetic(n_known: int, n_query: int, seed: int = 0):
    """Known vectors with their identity, and query vectors with theirs (-1: a stranger)."""
    rng = np.random.default_rng(seed)
    identities = max(1, n_known // PER_IDENTITY)
    strangers = max(1, n_query // 2)
    centres = rng.standard_normal((identities + strangers, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def around(labels: np.ndarray) -> np.ndarray:
        out = np.empty((len(labels), DIM), np.float32)
        for start in range(0, len(labels), 200_000):
            part = labels[start:start + 200_000]
            noise = rng.standard_normal((len(part), DIM)).astype(np.float32) * (0.28 / np.sqrt(DIM))
            v = centres[part] + noise
            out[start:start + len(part)] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    known_labels = rng.integers(0, identities, n_known)
    query_labels = np.where(rng.random(n_query) < 0.5, rng.integers(0, identities, n_query),
                            identities + rng.integers(0, strangers, n_query))
    return around(known_labels), known_labels, around(query_labels), np.where(query_labels < identities,
                                                                              query_labels, -1)


def run(n_known: int, n_query: int, methods: list[str], rules: GuessRules) -> list[dict]:
    known, known_labels, query, query_labels = synthetic(n_known, n_query)
    known_p = prepare(known, "euclidean")
    query_p = prepare(query, "euclidean")
    face_ids = np.arange(1, n_query + 1)
    rows = []
    reference = None
    for method in methods:
        build = 0.0
        search = None
        if method == "usearch":
            from faces.recognition.index import UsearchIndex

            started = time.perf_counter()
            index = UsearchIndex(known_p, dtype="f16")
            build = time.perf_counter() - started
            search = index.radius_pairs
        channel = Channel(0.6, known_p, np.arange(n_known, dtype=np.int64) + 10_000_000, known_labels + 1, query_p,
                          np.arange(n_query), search=search)
        started = time.perf_counter()
        guesses = guess_names(face_ids, face_ids, {"dlib": channel}, rules)
        seconds = time.perf_counter() - started
        truth = {int(f): int(l) + 1 for f, l in zip(face_ids, query_labels) if l >= 0}
        right = sum(1 for f, g in guesses.items() if truth.get(f) == g.name_id)
        labels = {f: g.name_id for f, g in guesses.items()}
        same = None if reference is None else sum(1 for f in set(labels) | set(reference)
                                                  if labels.get(f) == reference.get(f)) / max(
            len(set(labels) | set(reference)), 1)
        if method == "exact":
            reference = labels
        rows.append({"known": n_known, "queries": n_query, "method": method, "build_s": build,
                     "guess_s": seconds, "guesses": len(guesses), "right": right,
                     "wrong": len(guesses) - right, "agree_with_exact": same})
        print(f"| {n_known:,} | {n_query:,} | {method} | {build:.1f} | {seconds:.1f} | {len(guesses)} | {right} "
              f"| {len(guesses) - right} | {'-' if same is None else f'{100 * same:.2f} %'} |", flush=True)
    return rows


def refresh_timing(n_faces: int, full: bool = False) -> None:
    """One naming action, then a full recompute, in a SQLite library of ``n_faces`` synthetic faces."""
    import sqlalchemy as sa

    from faces.config import load_settings
    from faces.naming import actions
    from faces.naming.refresh import refresh_guesses
    from faces.store.db import Store
    from faces.store.models import Embedding, Face, FaceState, Image, Name, User

    known, labels, _, _ = synthetic(n_faces, 1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(Path(tmp), environ={}, overrides={"finders": {"opencv": {"enabled": False}}})
        store = Store(settings.resolved_database_url)
        started = time.perf_counter()
        with store.engine.begin() as conn:
            conn.execute(sa.insert(User), [{"id": 1, "username": "owner"}])
            identities = int(labels.max()) + 1
            conn.execute(sa.insert(Name), [{"id": i + 1, "owner_id": 1, "name": f"person {i}",
                                            "uuid": f"{i:032x}"} for i in range(identities)])
            conn.execute(sa.insert(Image), [{"id": i + 1, "owner_id": 1, "content_hash": f"{i:064x}",
                                             "path": f"/p/{i}.jpg"} for i in range(n_faces)])
            named = np.arange(n_faces) % 2 == 0
            conn.execute(sa.insert(Face), [
                {"id": i + 1, "uuid": f"{i:032x}", "image_id": i + 1, "owner_id": 1, "x": 0, "y": 0, "w": 50,
                 "h": 50, "state": FaceState.CONFIRMED if named[i] else FaceState.UNNAMED,
                 "name_id": int(labels[i]) + 1 if named[i] else None} for i in range(n_faces)])
            conn.execute(sa.insert(Embedding), [
                {"face_id": i + 1, "finder": "dlib", "model_version": "dlib-hog", "vector": known[i].tobytes()}
                for i in range(n_faces)])
        print(f"library of {n_faces:,} faces ({int(named.sum()):,} named) written in "
              f"{time.perf_counter() - started:.1f} s")
        if full:
            with store.session() as s:
                started = time.perf_counter()
                refresh_guesses(s, settings, 1)
                print(f"full recompute (faces guess), cold cache: {time.perf_counter() - started:.2f} s")
        for attempt in range(4):
            face_id = 2 * (attempt + 1)  # an unnamed face
            with store.session() as s:
                started = time.perf_counter()
                actions.set_name(s, settings, 1, 1, face_id, "person 0")
                in_action = time.perf_counter() - started
            cache = "cold cache: embeddings and faces read" if attempt == 0 else "warm cache"
            print(f"set_name + incremental refresh, {cache}: {in_action:.3f} s")
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 250_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--methods", nargs="+", default=["exact", "usearch"], choices=["exact", "usearch"])
    parser.add_argument("--refresh", type=int, default=0, help="also time one naming action in a library of N")
    parser.add_argument("--full", action="store_true", help="with --refresh: also time a full recompute")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}")
    if args.sizes and args.methods:
        print("| named faces | new faces | method | build s | guess s | guesses | right | wrong | same as exact |\n"
              "|---|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            run(n, args.queries, args.methods, GuessRules())
    if args.refresh:
        refresh_timing(args.refresh, args.full)


if __name__ == "__main__":
    main()
