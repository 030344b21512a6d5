"""How good are the guesses and groups? Scan photos of known people, name K photos each, measure the rest.

Usage (from the project root, in the venv):

    python benchmarks/recognition.py                      # ../shared/data/identities.csv, K = 1 2 3
    python benchmarks/recognition.py --folder DIR [--strangers DIR2]   # DIR/PERSON/IMAGE
    python benchmarks/recognition.py --sweep              # also tune the rules (in process, same data)
    python benchmarks/recognition.py --ann ivf --ann-probes 2   # guess through the index, few lists per face

People with ``--min-photos`` (4) photos or more are *known*: the first K photos of each (that have a face)
are named through the command line (``faces name --csv``), then ``faces guess`` runs and ``faces faces --json``
is read back. Everyone else is a *stranger*. Reported per finder (dlib, opencv) and combined (both):

- guesses on known faces that are right / wrong (wrong % of all guesses made on known faces),
- known faces left without a guess, strangers given a name,
- groups of unnamed faces: purity (faces in their group's majority person) and coverage (faces of people with
  2+ unnamed faces that are in a group),
- a pair-verification report per finder: accuracy of "same person?" with a threshold chosen by 10-fold
  cross-validation, on all same-person pairs and as many different-person pairs.

The scanned library is cached (``--cache``, default ``artifacts/bench-recognition``): later runs only copy it.
Each photo's evaluated face is its largest detected face (the identity photos hold one person each).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic"}
FINDER_SETS = {"dlib": ["dlib"], "opencv": ["opencv"], "combined": ["dlib", "opencv"]}
ALL_FINDERS = ["dlib", "opencv"]


# --- the photos -------------------------------------------------------------------------------------------------


def load_identities(data: Path) -> list[tuple[Path, str]]:
    """(photo, person) from ``identities.csv`` in ``data``."""
    with (data / "identities.csv").open(newline="") as handle:
        return [((data / row["path_from_data_root"]).resolve(), row["identity"]) for row in csv.DictReader(handle)]


def load_folder(folder: Path, strangers: Path | None) -> list[tuple[Path, str]]:
    """(photo, person) from ``folder/PERSON/IMAGE``; photos under ``strangers`` are each their own person."""
    items = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        items += [(f.resolve(), person.name) for f in sorted(person.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if strangers is not None:
        items += [(f.resolve(), f"stranger:{f.name}") for f in sorted(strangers.rglob("*"))
                  if f.suffix.lower() in IMAGE_SUFFIXES]
    return items


def _natural(path: Path) -> tuple:
    import re

    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path)))


# --- the command line -------------------------------------------------------------------------------------------


def faces_cli(data_dir: Path, *args: str, env: dict | None = None) -> object:
    """Run ``faces --data-dir DATA_DIR ARGS --json`` and return its JSON output."""
    command = [str(Path(sys.executable).parent / "faces"), "--data-dir", str(data_dir), *args, "--json"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FACES_")}
    full_env.update(env or {})
    done = subprocess.run(command, capture_output=True, text=True, env=full_env)
    if done.returncode != 0:
        raise SystemExit(f"faces {' '.join(args[:2])} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)


def scan(cache: Path, photos: list[Path]) -> dict:
    """Scan the photos into the cached library (skipped when the cache already holds exactly these photos)."""
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / "scanned.json"
    if marker.exists() and json.loads(marker.read_text()) == sorted(map(str, photos)):
        summary = cache / "scan_summary.json"
        return {"cached": True, **(json.loads(summary.read_text()) if summary.exists() else {})}
    started = time.perf_counter()
    out = faces_cli(cache, "scan", *map(str, photos))
    out["wall_seconds"] = round(time.perf_counter() - started, 1)
    out.pop("error_details", None)
    marker.write_text(json.dumps(sorted(map(str, photos))))
    (cache / "scan_summary.json").write_text(json.dumps(out))
    return out


def copy_library(cache: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        source = cache / f"faces.db{suffix}"
        if source.exists():
            shutil.copy2(source, target / f"faces.db{suffix}")


# --- evaluation -------------------------------------------------------------------------------------------------


def evaluated_faces(listing: list[dict], photos: set[Path]) -> dict[Path, dict]:
    """photo -> its largest face (from ``faces faces --json``)."""
    best: dict[Path, dict] = {}
    for face in listing:
        photo = Path(face["image"]).resolve()
        if photo not in photos:
            continue
        area = face["box"][2] * face["box"][3]
        if photo not in best or area > best[photo]["box"][2] * best[photo]["box"][3]:
            best[photo] = face
    return best


def plan_names(items: list[tuple[Path, str]], faces_by_photo: dict[Path, dict], known: set[str], k: int
               ) -> dict[int, str]:
    """face id -> person for the first ``k`` photos (with a face) of every known person."""
    by_person: dict[str, list[Path]] = defaultdict(list)
    for photo, person in items:
        if person in known and photo in faces_by_photo:
            by_person[person].append(photo)
    named = {}
    for person, photos in by_person.items():
        for photo in sorted(photos, key=_natural)[:k]:
            named[faces_by_photo[photo]["id"]] = person
    return named


def score(items, faces_by_photo, known, named, listing) -> dict:
    """Counts of right/wrong/missing guesses, strangers named, group purity and coverage."""
    person_of = {faces_by_photo[p]["id"]: person for p, person in items if p in faces_by_photo}
    state = {f["id"]: f for f in listing}
    right = wrong = missed = known_total = strangers = strangers_named = 0
    groups: dict[int, list[str]] = defaultdict(list)
    unnamed_people: Counter = Counter()
    for face_id, person in person_of.items():
        if face_id in named:
            continue
        face = state[face_id]
        guess = (face.get("guess") or {}).get("name")
        if person in known:
            known_total += 1
            if guess is None:
                missed += 1
            elif guess == person:
                right += 1
            else:
                wrong += 1
        else:
            strangers += 1
            strangers_named += guess is not None
        if face["state"] in ("unnamed", "guessed"):
            unnamed_people[person] += 1
            if face.get("group") is not None:
                groups[face["group"]].append(person)
    real_groups = [members for members in groups.values() if len(members) >= 2]
    grouped = sum(len(m) for m in real_groups)
    majority = sum(Counter(m).most_common(1)[0][1] for m in real_groups)
    groupable = sum(c for c in unnamed_people.values() if c >= 2)
    guesses = right + wrong
    return {
        "known": known_total, "right": right, "wrong": wrong, "no_guess": missed,
        "wrong_pct": 100.0 * wrong / guesses if guesses else 0.0,
        "guessed_pct": 100.0 * guesses / known_total if known_total else 0.0,
        "right_pct": 100.0 * right / known_total if known_total else 0.0,
        "strangers": strangers, "strangers_named": strangers_named,
        "strangers_named_pct": 100.0 * strangers_named / strangers if strangers else 0.0,
        "groups": len(real_groups), "group_purity_pct": 100.0 * majority / grouped if grouped else 0.0,
        "group_coverage_pct": 100.0 * grouped / groupable if groupable else 0.0,
    }


def run_cli(cache: Path, items, faces_by_photo, known, ks, finder_sets, extra_env: dict | None = None) -> list[dict]:
    rows = []
    for label, finders in finder_sets.items():
        env = {f"FACES_FINDERS__{f.upper()}__ENABLED": "false" for f in ALL_FINDERS if f not in finders}
        env.update(extra_env or {})
        for k in ks:
            with tempfile.TemporaryDirectory() as tmp:
                library = Path(tmp) / "lib"
                copy_library(cache, library)
                named = plan_names(items, faces_by_photo, known, k)
                names_csv = Path(tmp) / "names.csv"
                with names_csv.open("w", newline="") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(["face_id", "name"])
                    writer.writerows(sorted(named.items()))
                started = time.perf_counter()
                faces_cli(library, "name", "--csv", str(names_csv), env=env)
                faces_cli(library, "guess", env=env)
                seconds = time.perf_counter() - started
                listing = faces_cli(library, "faces", env=env)
            row = {"finders": label, "k": k, **score(items, faces_by_photo, known, named, listing),
                   "seconds": round(seconds, 1)}
            rows.append(row)
            print(_row_text(row), flush=True)
    return rows


HEADER = ("| finders | K | known faces | right | wrong | wrong % of guesses | known guessed % | no guess "
          "| strangers named | groups | purity % | coverage % |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def _row_text(r: dict) -> str:
    return (f"| {r['finders']} | {r['k']} | {r['known']} | {r['right']} | {r['wrong']} | {r['wrong_pct']:.2f} "
            f"| {r['guessed_pct']:.1f} | {r['no_guess']} | {r['strangers_named']}/{r['strangers']} "
            f"({r['strangers_named_pct']:.1f} %) | {r['groups']} | {r['group_purity_pct']:.1f} "
            f"| {r['group_coverage_pct']:.1f} |")


# --- in-process: embeddings, pair verification, rule sweep ------------------------------------------------------


def load_embeddings(cache: Path) -> dict[str, dict[int, np.ndarray]]:
    """finder -> face id -> embedding, read from the cached library."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{cache / 'faces.db'}")
    out: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
    with engine.connect() as conn:
        for face_id, finder, vector in conn.execute(sa.text("SELECT face_id, finder, vector FROM embeddings")):
            out[finder][face_id] = np.frombuffer(vector, np.float32)
    engine.dispose()
    return out


def pair_verification(items, faces_by_photo, embeddings, tolerances, seed: int = 0) -> list[dict]:
    """Same/different person accuracy per finder, threshold by 10-fold cross-validation."""
    from faces.naming.refresh import FINDER_METRICS
    from faces.recognition.vectors import distance_matrix, prepare

    rng = np.random.default_rng(seed)
    rows = []
    for finder, vectors in embeddings.items():
        faces = [(faces_by_photo[p]["id"], person) for p, person in items
                 if p in faces_by_photo and faces_by_photo[p]["id"] in vectors]
        ids = [f for f, _ in faces]
        people = np.array([p for _, p in faces])
        prepared = prepare(np.stack([vectors[f] for f in ids]), FINDER_METRICS[finder])
        d = distance_matrix(prepared, prepared)
        iu = np.triu_indices(len(ids), 1)
        same = people[iu[0]] == people[iu[1]]
        pos = np.nonzero(same)[0]
        neg = rng.choice(np.nonzero(~same)[0], size=min(len(pos), int((~same).sum())), replace=False)
        chosen = np.concatenate([pos, neg])
        dist, label = d[iu][chosen], same[chosen]
        folds = rng.permutation(len(chosen)) % 10
        accs, thresholds = [], []
        for fold in range(10):
            train, test = folds != fold, folds == fold
            candidates = np.unique(dist[train])
            train_acc = [((dist[train] <= t) == label[train]).mean() for t in candidates]
            t = float(candidates[int(np.argmax(train_acc))])
            thresholds.append(t)
            accs.append(((dist[test] <= t) == label[test]).mean())
        at_tol = ((dist <= tolerances[finder]) == label).mean()
        rows.append({"finder": finder, "faces": len(ids), "pairs": len(chosen), "same_pairs": len(pos),
                     "accuracy_pct": 100 * float(np.mean(accs)), "accuracy_std": 100 * float(np.std(accs)),
                     "threshold": float(np.mean(thresholds)), "threshold_std": float(np.std(thresholds)),
                     "tolerance": tolerances[finder], "accuracy_at_tolerance_pct": 100 * float(at_tol)})
    return rows


def sweep(items, faces_by_photo, known, embeddings, tolerances, k: int) -> list[dict]:
    """The guessing rules on the same data, in process: margin x tolerance scale x combination, per finder set."""
    from faces.naming.refresh import FINDER_METRICS
    from faces.recognition.guess import Channel, GuessRules, guess_names
    from faces.recognition.vectors import prepare

    named = plan_names(items, faces_by_photo, known, k)
    person_of = {faces_by_photo[p]["id"]: person for p, person in items if p in faces_by_photo}
    image_of = {faces_by_photo[p]["id"]: faces_by_photo[p]["image_id"] for p, _ in items if p in faces_by_photo}
    name_ids = {person: i + 1 for i, person in enumerate(sorted(set(named.values())))}
    person_of_name = {v: k2 for k2, v in name_ids.items()}
    query_ids = np.array(sorted(f for f in person_of if f not in named), np.int64)
    rows = []
    for label, finders in FINDER_SETS.items():
        channels = {}
        for finder in finders:
            vectors = embeddings.get(finder, {})
            known_ids = [f for f in sorted(named) if f in vectors]
            q_rows = [i for i, f in enumerate(query_ids.tolist()) if f in vectors]
            metric = FINDER_METRICS[finder]
            channels[finder] = Channel(
                tolerance=tolerances[finder],
                known=prepare(np.stack([vectors[f] for f in known_ids]), metric),
                known_face_ids=np.array(known_ids, np.int64),
                known_name_ids=np.array([name_ids[named[f]] for f in known_ids], np.int64),
                query=prepare(np.stack([vectors[query_ids[i]] for i in q_rows]), metric),
                query_rows=np.array(q_rows, np.int64))
        combos = ["agree", "any", "mean"] if len(finders) > 1 else ["agree"]
        for combine in combos:
            for scale in (0.7, 0.8, 0.9, 1.0, 1.1):
                for margin in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
                    rules = GuessRules(margin=margin, tolerance_scale=scale, combine=combine)
                    guesses = guess_names(query_ids, [image_of[f] for f in query_ids.tolist()], channels, rules)
                    r = Counter()
                    for f in query_ids.tolist():
                        person = person_of[f]
                        g = guesses.get(f)
                        if person in known:
                            r["known"] += 1
                            if g is not None:
                                r["right" if person_of_name[g.name_id] == person else "wrong"] += 1
                        else:
                            r["strangers"] += 1
                            r["strangers_named"] += g is not None
                    made = r["right"] + r["wrong"]
                    rows.append({"finders": label, "combine": combine, "scale": scale, "margin": margin,
                                 "wrong_pct": 100 * r["wrong"] / made if made else 0.0,
                                 "guessed_pct": 100 * made / r["known"], "right_pct": 100 * r["right"] / r["known"],
                                 "strangers_named_pct": 100 * r["strangers_named"] / max(r["strangers"], 1),
                                 "wrong": r["wrong"], "strangers_named": r["strangers_named"]})
    return rows


# --- main -------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--folder", type=Path, help="PERSON/IMAGE folder instead of identities.csv")
    parser.add_argument("--strangers", type=Path, help="photos of strangers (with --folder)")
    parser.add_argument("--cache", type=Path, default=ROOT / "artifacts" / "bench-recognition")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--min-photos", type=int, default=4)
    parser.add_argument("--sweep", action="store_true", help="also tune the rules in process")
    parser.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    parser.add_argument("--json-out", type=Path, help="write every number to this JSON file")
    parser.add_argument("--ann", choices=["auto", "exact", "ivf"], default="auto",
                        help="setting ann_index for the command-line runs (ivf: guess through the index)")
    parser.add_argument("--ann-probes", type=int, help="setting ann_probes (index lists looked at per face)")
    args = parser.parse_args()

    items = load_folder(args.folder, args.strangers) if args.folder else load_identities(args.data)
    counts = Counter(person for _, person in items)
    known = {p for p, c in counts.items() if c >= args.min_photos}
    print(f"{len(items)} photos, {len(counts)} people: {len(known)} known ({args.min_photos}+ photos), "
          f"{len(counts) - len(known)} strangers ({sum(c for p, c in counts.items() if p not in known)} photos)")
    photos = [p for p, _ in items]
    summary = scan(args.cache, photos)
    print("scan:", json.dumps({k: summary.get(k) for k in ("cached", "images", "faces", "no_face", "errors",
                                                            "seconds", "wall_seconds") if k in summary}))
    listing = faces_cli(args.cache, "faces")
    faces_by_photo = evaluated_faces(listing, set(photos))
    print(f"photos with a face: {len(faces_by_photo)} of {len(photos)}; "
          f"by source: {dict(Counter(str(p.relative_to(args.data)).split('/')[0] for p in photos if p not in faces_by_photo)) if not args.folder else ''} without a face")
    settings = __import__("faces.config", fromlist=["load_settings"]).load_settings(args.cache, environ={})
    tolerances = {name: conf.tolerance for name, conf in settings.finders.items()}
    results: dict = {"scan": summary, "known_people": len(known), "photos": len(photos)}

    embeddings = load_embeddings(args.cache)
    for finder in ALL_FINDERS:
        have = sum(1 for f in faces_by_photo.values() if f["id"] in embeddings.get(finder, {}))
        print(f"  {finder}: {have} of the evaluated faces have an embedding")
    pairs = pair_verification(items, faces_by_photo, embeddings, tolerances)
    results["pairs"] = pairs
    print("\nPair verification (threshold by 10-fold cross-validation):\n")
    print("| finder | faces | pairs (same) | accuracy % | threshold | accuracy % at the tolerance |\n|---|---|---|---|---|---|")
    for r in pairs:
        print(f"| {r['finder']} | {r['faces']} | {r['pairs']} ({r['same_pairs']}) | {r['accuracy_pct']:.1f} "
              f"± {r['accuracy_std']:.1f} | {r['threshold']:.3f} ± {r['threshold_std']:.3f} "
              f"| {r['accuracy_at_tolerance_pct']:.1f} (tolerance {r['tolerance']}) |")

    if args.sweep:
        results["sweep"] = {}
        for k in args.k:
            rows = sweep(items, faces_by_photo, known, embeddings, tolerances, k)
            results["sweep"][k] = rows
            print(f"\nRule sweep at K={k} (in process): best right % with wrong < 0.5 % and strangers < 1 %\n")
            print("| finders | combine | scale | margin | wrong % | guessed % | right % | strangers named % |\n"
                  "|---|---|---|---|---|---|---|---|")
            for label in FINDER_SETS:
                ok = [r for r in rows if r["finders"] == label and r["wrong_pct"] < 0.5
                      and r["strangers_named_pct"] < 1.0]
                pool = ok or [r for r in rows if r["finders"] == label]
                for r in sorted(pool, key=lambda r: (-r["right_pct"], r["wrong_pct"]))[:4]:
                    print(f"| {label}{'' if ok else ' (no rule meets the targets)'} | {r['combine']} | {r['scale']} "
                          f"| {r['margin']} | {r['wrong_pct']:.2f} | {r['guessed_pct']:.1f} | {r['right_pct']:.1f} "
                          f"| {r['strangers_named_pct']:.1f} |")

    if not args.no_cli:
        print("\nThrough the command line (faces name --csv, faces guess, faces faces --json):\n")
        print(HEADER)
        extra = {"FACES_ANN_INDEX": args.ann}
        if args.ann_probes:
            extra["FACES_ANN_PROBES"] = str(args.ann_probes)
        results["cli"] = run_cli(args.cache, items, faces_by_photo, known, args.k, FINDER_SETS, extra)
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
