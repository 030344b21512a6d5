"""How long does guessing take in a huge library? Synthetic: N named faces, Q new faces to guess.

Usage (from the project root, in the venv):

    python benchmarks/guess_scale.py                      # exact and index at 100k, index at 250k, 500k, 1M
    python benchmarks/guess_scale.py --sizes 1000000 --methods ivf --probes 4 8 16
    python benchmarks/guess_scale.py --sizes --refresh 100000   # one naming action in a 100k-face library

Faces are random unit vectors around synthetic identities (about 50 faces per identity, dlib-like distances:
same person ~0.4, different ~1.4, tolerance 0.6). Half the new faces are of known identities, half strangers.
Methods, all feeding the same rules (``faces.recognition.guess.guess_names``):

- ``exact``: the block matrix product of ``faces.recognition.vectors.radius_pairs`` (every named face);
- ``ivf``: the app's index (``faces.recognition.index.IvfIndex``, about sqrt(N) lists, ``--probes`` lists looked at
  per face; the build is timed apart, the app builds it once and saves it);
- ``usearch``: an HNSW graph (f16, 32 nearest, distances recomputed exactly), for comparison only (not a
  dependency of faces: ``pip install usearch`` first).

The report gives build and guess times, how many guesses agree with the exact ones (same name, or no guess in
both) when ``exact`` ran at that size, the time per 1000 named faces (linear growth = a flat column), and the
memory: the named faces' matrix, the index, and the process's peak. The machine is shared and noisy: compare
the columns of one run, not runs of different days.

``--refresh N`` builds a SQLite library with N faces (half named), then times one ``set_name`` action (which
refreshes the guesses it affects): first as written (every row changed in the last two minutes: the refresh
checks them all by checksum), then after the library has aged (updated an hour ago), each time once cold and
then warm (embeddings and faces cached in memory). ``--full`` also times a full ``faces guess``.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from faces.recognition.guess import Channel, GuessRules, guess_names
from faces.recognition.index import DEFAULT_PROBES, IvfIndex
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


def _usearch_search(known_p, k: int = 32):
    """An HNSW search function with exact distances for the k approximate nearest (comparison only)."""
    from usearch.index import Index

    from faces.recognition.vectors import row_distances

    index = Index(ndim=DIM, metric="l2sq", dtype="f16", connectivity=16, expansion_add=128, expansion_search=64)
    index.add(np.arange(len(known_p), dtype=np.uint64), known_p.data)

    def search(queries, radius):
        found = index.search(queries.data, min(k, len(known_p)))
        keys = np.asarray(found.keys).reshape(len(queries), -1).astype(np.int64)
        valid = np.arange(keys.shape[1])[None, :] < np.asarray(found.counts).reshape(-1)[:, None]
        q, kk = np.nonzero(valid)[0], keys[valid]
        d = row_distances(queries, q, known_p, kk).astype(np.float32)
        keep = d <= radius
        order = np.lexsort((d[keep], q[keep]))
        return q[keep][order], kk[keep][order], d[keep][order]

    return search


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(n_known: int, n_query: int, methods: list[str], probes: list[int], rules: GuessRules) -> list[dict]:
    """Guess ``n_query`` new faces against ``n_known`` named ones with each method; print one row per method."""
    known, known_labels, query, query_labels = synthetic(n_known, n_query)
    known_p = prepare(known, "euclidean")
    query_p = prepare(query, "euclidean")
    del known, query
    face_ids = np.arange(1, n_query + 1)
    known_ids = np.arange(n_known, dtype=np.int64) + 10_000_000
    truth = {int(f): int(lab) + 1 for f, lab in zip(face_ids, query_labels) if lab >= 0}
    rows, reference, built = [], None, None
    runs = [(m, p) for m in methods for p in (probes if m == "ivf" else [0])]
    for method, probe in runs:
        build, search, index_mb = 0.0, None, 0.0
        started = time.perf_counter()
        if method == "ivf":
            if built is None:  # one index for every --probes value
                built = IvfIndex.build(known_ids, known_p)
                build = time.perf_counter() - started
            index = built
            index_mb = (index.keys.nbytes + index.lists.nbytes + index.centroids.nbytes) / 2**20

            def search(queries, radius, index=index, probe=probe):
                return index.radius_pairs(queries, known_p, radius, probes=probe)
        elif method == "usearch":
            search = _usearch_search(known_p)
            build = time.perf_counter() - started
        channel = Channel(0.6, known_p, known_ids, known_labels + 1, query_p, np.arange(n_query), search=search)
        started = time.perf_counter()
        guesses = guess_names(face_ids, face_ids, {"dlib": channel}, rules)
        seconds = time.perf_counter() - started
        labels = {f: g.name_id for f, g in guesses.items()}
        right = sum(1 for f, name in labels.items() if truth.get(f) == name)
        agree = None
        if reference is not None:
            agree = sum(1 for f in face_ids.tolist() if labels.get(f) == reference.get(f)) / n_query
        if method == "exact":
            reference = labels
        row = {"known": n_known, "queries": n_query, "method": method, "probes": probe, "build_s": build,
               "guess_s": seconds, "guesses": len(guesses), "right": right, "wrong": len(guesses) - right,
               "agree_with_exact": agree, "matrix_mb": known_p.data.nbytes / 2**20, "index_mb": index_mb,
               "peak_mb": _peak_mb()}
        rows.append(row)
        label = method if method != "ivf" else f"ivf, {probe} lists"
        print(f"| {n_known:,} | {n_query:,} | {label} | {build:.1f} | {seconds:.1f} | "
              f"{1000 * seconds / n_known * 1000:.1f} | {len(guesses)} | {right} | {len(guesses) - right} | "
              f"{'-' if agree is None else f'{100 * agree:.2f} %'} | {row['matrix_mb']:.0f} | {index_mb:.1f} | "
              f"{row['peak_mb']:.0f} |", flush=True)
    return rows


def _write_library(store, known: np.ndarray, labels: np.ndarray) -> int:
    import sqlalchemy as sa

    from faces.store.models import Embedding, Face, FaceState, Image, Name, User

    n_faces = len(known)
    named = np.arange(n_faces) % 2 == 0
    with store.engine.begin() as conn:
        conn.execute(sa.insert(User), [{"id": 1, "username": "owner"}])
        identities = int(labels.max()) + 1
        conn.execute(sa.insert(Name), [{"id": i + 1, "owner_id": 1, "name": f"person {i}",
                                        "uuid": f"{i:032x}"} for i in range(identities)])
        conn.execute(sa.insert(Image), [{"id": i + 1, "owner_id": 1, "content_hash": f"{i:064x}",
                                         "path": f"/p/{i}.jpg"} for i in range(n_faces)])
        conn.execute(sa.insert(Face), [
            {"id": i + 1, "uuid": f"{i:032x}", "image_id": i + 1, "owner_id": 1, "x": 0, "y": 0, "w": 50,
             "h": 50, "state": FaceState.CONFIRMED if named[i] else FaceState.UNNAMED,
             "name_id": int(labels[i]) + 1 if named[i] else None} for i in range(n_faces)])
        conn.execute(sa.insert(Embedding), [
            {"face_id": i + 1, "finder": "dlib", "model_version": "dlib-hog", "vector": known[i].tobytes()}
            for i in range(n_faces)])
    return int(named.sum())


def refresh_timing(n_faces: int, full: bool = False) -> None:
    """One naming action (and optionally a full recompute) in a SQLite library of ``n_faces`` synthetic faces."""
    import sqlalchemy as sa

    from faces.config import load_settings
    from faces.naming import actions
    from faces.naming.refresh import clear_cache, refresh_guesses
    from faces.store.db import Store

    known, labels, _, _ = synthetic(n_faces, 1)
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(Path(tmp), environ={}, overrides={"finders": {"opencv": {"enabled": False}}})
        store = Store(settings.resolved_database_url)
        started = time.perf_counter()
        named = _write_library(store, known, labels)
        print(f"library of {n_faces:,} faces ({named:,} named) written in {time.perf_counter() - started:.1f} s")
        if full:
            with store.session() as s:
                started = time.perf_counter()
                refresh_guesses(s, settings, 1)
                print(f"full recompute (faces guess), cold cache: {time.perf_counter() - started:.2f} s")
        face_id = 0
        for age in ("just written", "written an hour ago"):
            if age != "just written":
                with store.engine.begin() as conn:
                    conn.execute(sa.text("UPDATE faces SET updated_at = :t"),
                                 {"t": time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime(time.time() - 3600))})
                clear_cache()
            for attempt in range(5):
                face_id += 2  # an unnamed face
                with store.session() as s:
                    started = time.perf_counter()
                    actions.set_name(s, settings, 1, 1, face_id, "person 0")
                    seconds = time.perf_counter() - started
                cache = "cold: embeddings and faces read" if attempt == 0 else "warm"
                print(f"library {age}: set_name + incremental refresh, {cache}: {seconds:.3f} s", flush=True)
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000, 250_000, 500_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--methods", nargs="+", default=["exact", "ivf"], choices=["exact", "ivf", "usearch"])
    parser.add_argument("--exact-up-to", type=int, default=100_000,
                        help="run the exact search only up to this size (it takes minutes beyond)")
    parser.add_argument("--probes", type=int, nargs="+", default=[DEFAULT_PROBES])
    parser.add_argument("--refresh", type=int, default=0, help="also time one naming action in a library of N")
    parser.add_argument("--full", action="store_true", help="with --refresh: also time a full recompute")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    if args.sizes and args.methods:
        print("| named faces | new faces | method | build s | guess s | guess ms per 1000 named | guesses | right "
              "| wrong | same as exact | named matrix MB | index MB | process peak MB |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for n in args.sizes:
            methods = [m for m in args.methods if m != "exact" or n <= args.exact_up_to]
            run(n, args.queries, methods, args.probes, GuessRules())
    if args.refresh:
        refresh_timing(args.refresh, args.full)


if __name__ == "__main__":
    main()
