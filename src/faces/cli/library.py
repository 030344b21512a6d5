"""Commands of the 'library' group: scan, images, faces, stats, selfcheck.

Every command that lists things has ``--json``: a stable, documented output for scripts (see README).
"""

from __future__ import annotations

import gc
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy import select

from faces.cli import context, finder_list

EXIT_BUSY = 3  # `faces scan`: another detection run holds the library's lock
SCAN_GC_THRESHOLD = 20_000  # young objects between two collections during a scan (Python's default: 700)


class _RateColumn(ProgressColumn):
    """Images per second since the start."""

    def render(self, task) -> Text:  # noqa: ANN001 - rich's Task
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:.2f} images/s", style="progress.data.speed")


def _apply_options(finders: Optional[str], workers: Optional[int]):
    settings = context.effective_settings()
    if finders:
        wanted = finder_list(finders)
        unknown = [n for n in wanted if n not in settings.finders]
        if unknown:
            context.fail(f"unknown finder {', '.join(unknown)}; known: {', '.join(settings.finders)}")
        for name, conf in settings.finders.items():
            conf.enabled = name in wanted
    if workers is not None:
        if workers < 1:
            context.fail("--workers must be at least 1")
        settings.workers = workers
    return settings


def scan(
    paths: list[Path] = typer.Argument(..., help="Image files or folders (searched recursively)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    finders: Optional[str] = typer.Option(None, "--finders",
                                          help="Comma-separated finders to run this time, e.g. dlib,opencv "
                                               "(default: every enabled finder)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default: one per core)."),
) -> None:
    """Add the images under PATH... to the library, then find the faces in every image not yet processed."""
    # A scan allocates many short-lived objects (imports, database rows): collecting the young generation
    # every 700 of them costs more than the little cyclic garbage it finds.
    gc.set_threshold(SCAN_GC_THRESHOLD, *gc.get_threshold()[1:])
    from faces.jobs.pipeline import finder_names, start_workers

    settings = _apply_options(finders, workers)
    from faces.metadata.subscribers import warm_up

    warm_up([p.expanduser() for p in paths], settings)  # exiftool gets ready while the files are added
    store = context.store()
    owner_id = context.owner_id()
    names = finder_names(settings)
    missing = [str(p) for p in paths if not p.expanduser().exists()]
    if missing:
        context.fail(f"no such file or folder: {', '.join(missing)}")
    with ExitStack() as stack:
        if names and settings.executor != "celery":
            # the workers load their models while the files are added; a few files need no more workers
            files_only = all(p.expanduser().is_file() for p in paths)
            pool = stack.enter_context(start_workers(settings, names, at_most=len(paths) if files_only else None))
        else:
            pool = None
        _scan(store, settings, owner_id, names, paths, as_json, pool)


def _scan(store, settings, owner_id: int, names: list[str], paths: list[Path], as_json: bool,  # noqa: ANN001
          pool) -> None:  # noqa: ANN001
    """``faces scan`` once its settings are known: add the files, then detect (see :func:`scan`)."""
    from faces.jobs.executor import WorkerStartError
    from faces.jobs.lock import DetectionBusy
    from faces.jobs.pipeline import add_images, run_detection

    gc.freeze()  # the modules imported by now (finders, media) stay: see faces.cli.main
    try:
        added = add_images(store, settings, owner_id, paths, finders=names)
    except FileNotFoundError as exc:
        context.fail(str(exc))
    out: dict = {"files": added.files, "added": len(added.added), "duplicates": added.duplicates,
                 "unreadable": len(added.errors)}
    error_details = [{"image_id": e.image_id, "path": e.path, "finder": None, "code": e.code, "message": e.message}
                     for e in added.errors]
    if not as_json:
        context.console.print(f"Added {len(added.added)} images ({added.duplicates} already known, "
                              f"{len(added.errors)} unreadable).", highlight=False)
    if not names:
        context.fail("no finder is enabled and able to run; the images are kept and will be processed once one "
                     "can run (see 'faces selfcheck')")

    bar = Progress(TextColumn("finding faces"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                   TimeElapsedColumn(), console=context.console, transient=True,
                   disable=not context.console.is_terminal)
    task = bar.add_task("scan", total=None)

    def on_progress(p) -> None:  # noqa: ANN001 - faces.jobs.pipeline.Progress
        bar.update(task, total=p.total, completed=p.done)

    gc.freeze()  # and so do those that adding the files imported
    try:
        with bar:
            summary = run_detection(store, settings, owner_id, progress=on_progress, finders=names, pool=pool)
    except DetectionBusy as busy:
        if as_json:
            context.print_json(out | {"busy": True, "progress": busy.progress.as_dict(),
                                      "error_details": error_details})
        else:
            context.console.print(f"detection is still busy: {busy.progress.describe()}. "
                                  "The running scan will also process the images added now.", highlight=False)
        raise typer.Exit(EXIT_BUSY)
    except WorkerStartError as exc:
        context.fail(str(exc))
    except KeyboardInterrupt:
        context.console.print("interrupted: what was found so far is kept; the next scan goes on from there.")
        raise typer.Exit(130)
    error_details += [e.__dict__ for e in summary.error_details]
    out |= {"busy": False, "finders": summary.finders, "images": summary.images, "faces": summary.faces,
            "embeddings": summary.embeddings, "no_face": summary.no_face,
            "errors": len(added.errors) + summary.errors, "seconds": round(summary.seconds, 3),
            "images_per_second": round(summary.images_per_second, 3), "run_id": summary.run_id,
            "error_details": error_details}
    if as_json:
        context.print_json(out)
        return
    errors = out["errors"]
    context.console.print(
        f"Detection ({', '.join(summary.finders)}): {summary.images} images, {summary.faces} faces, "
        f"{summary.no_face} without faces, {errors} {'error' if errors == 1 else 'errors'}, "
        f"{summary.seconds:.1f} s ({summary.images_per_second:.2f} images/s).", highlight=False)
    for e in error_details[:20]:
        where = f" ({e['finder']})" if e["finder"] else ""
        context.console.print(f"  {e['path']}{where}: {e['message']}", highlight=False, markup=False)
    if len(error_details) > 20:
        context.console.print(f"  ... and {len(error_details) - 20} more (faces images --json)")


def images(
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    errors_only: bool = typer.Option(False, "--errors", help="Only images with an error."),
) -> None:
    """List the images of the library with each finder's status."""
    from faces.store.models import Image, ImageFinder
    from faces.store.stats import utc_iso

    owner_id = context.owner_id()
    with context.store().session() as session:
        rows = session.scalars(select(Image).where(Image.owner_id == owner_id).order_by(Image.id)).all()
        statuses: dict[int, dict] = {}
        for r in session.scalars(select(ImageFinder).join(Image, Image.id == ImageFinder.image_id)
                                 .where(Image.owner_id == owner_id)):
            statuses.setdefault(r.image_id, {})[r.finder] = {
                "status": r.status.value, "error": r.error, "seconds": round(r.seconds or 0.0, 3),
                "model_version": r.model_version or None, "processed_at": utc_iso(r.processed_at)}
        data = []
        for image in rows:
            finders = dict(sorted(statuses.get(image.id, {}).items()))
            has_error = image.error_code is not None or any(f["status"] == "error" for f in finders.values())
            if errors_only and not has_error:
                continue
            data.append({
                "id": image.id, "path": image.path, "content_hash": image.content_hash, "bytes": image.bytes,
                "width": image.width, "height": image.height, "format": image.format or None,
                "orientation": image.orientation,
                "taken_at": image.taken_at.isoformat() if image.taken_at else None,
                "added_at": utc_iso(image.added_at),
                "error_code": image.error_code, "error": image.error, "finders": finders})
    if as_json:
        context.print_json(data)
        return
    table = Table("id", "path", "size", "finders", "error")
    for item in data:
        finders = ", ".join(f"{k}: {v['status']}" for k, v in item["finders"].items())
        table.add_row(str(item["id"]), Text(item["path"]), f"{item['width']}x{item['height']}", finders,
                      Text(item["error"] or next((v["error"] for v in item["finders"].values() if v["error"]), "")))
    _out_console().print(table)


def faces(
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    image_id: Optional[int] = typer.Option(None, "--image", help="Only the faces of this image id."),
) -> None:
    """List the faces of the library: box, finders, name state, guess and group."""
    from faces.store.models import Embedding, Face, Image, Name

    owner_id = context.owner_id()
    with context.store().session() as session:
        query = (select(Face, Image.path).join(Image, Image.id == Face.image_id)
                 .where(Face.owner_id == owner_id).order_by(Face.image_id, Face.id))
        if image_id is not None:
            query = query.where(Face.image_id == image_id)
        rows = session.execute(query).all()
        finders: dict[int, list[str]] = {}
        emb_query = (select(Embedding.face_id, Embedding.finder).join(Face, Face.id == Embedding.face_id)
                     .where(Face.owner_id == owner_id))
        if image_id is not None:
            emb_query = emb_query.where(Face.image_id == image_id)
        for face_id, finder in session.execute(emb_query):
            finders.setdefault(face_id, []).append(finder)
        names = dict(session.execute(select(Name.id, Name.name).where(Name.owner_id == owner_id)).all())
        data = []
        for face, path in rows:
            guess = None
            if face.guess_name_id is not None and face.state.value == "guessed":
                guess = {"name": names.get(face.guess_name_id),
                         "distance": None if face.guess_distance is None else round(face.guess_distance, 4),
                         "finders": [f for f in (face.guess_finders or "").split(",") if f]}
            data.append({
                "id": face.id, "uuid": face.uuid, "image_id": face.image_id, "image": path, "box": face.box,
                "score": round(face.score, 4), "finders": sorted(finders.get(face.id, [])),
                "state": face.state.value,
                "name": names.get(face.name_id) if face.name_id is not None and face.state.value == "confirmed"
                else None,
                "guess": guess, "group": face.cluster_id})
    if as_json:
        context.print_json(data)
        return
    table = Table("id", "image", "box", "finders", "state", "name")
    for item in data:
        name = item["name"] or (f"{item['guess']['name']}?" if item["guess"] else "")
        table.add_row(str(item["id"]), Text(item["image"]), " ".join(map(str, item["box"])),
                      ",".join(item["finders"]), item["state"], Text(name or ""))
    _out_console().print(table)


def stats(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """Statistics of the library: images per finder and status, faces by state, names, errors, time."""
    from faces.store.stats import library_stats

    settings = context.effective_settings()
    owner_id = context.owner_id()
    enabled = [name for name, conf in settings.finders.items() if conf.enabled]
    with context.store().session() as session:
        data = library_stats(session, owner_id, finder_names=enabled)
    if as_json:
        context.print_json(data)
        return
    out = _out_console()
    out.print(f"images: {data['images']} ({data['unreadable']} unreadable)")
    for name, entry in data["finders"].items():
        out.print(f"  {name}: {entry['done']} with faces, {entry['no_face']} without, {entry['error']} errors, "
                  f"{entry['pending']} pending, {entry['seconds']:.1f} s")
    out.print(f"faces: {data['faces']} ({data['confirmed']} confirmed, {data['guessed']} guessed, "
              f"{data['unnamed']} unnamed, {data['unknown']} unknown, {data['ignored']} ignored)")
    out.print(f"names: {data['names']}")
    out.print(f"errors: {data['errors']}")
    out.print(f"detection: {data['runs']} runs, {data['seconds']:.1f} s")


def selfcheck(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """Check each finder: installed libraries, versions, model files, and whether it can run. Exit code 1 if
    no enabled finder can run."""
    from faces.finders.registry import FINDERS, self_check

    settings = context.effective_settings()
    checks = []
    for name in FINDERS:
        conf = settings.finders.get(name)
        check = self_check(name, settings, thorough=True)
        checks.append({
            "name": name, "enabled": bool(conf and conf.enabled), "ok": check.ok, "reason": check.reason or None,
            "libraries": check.libraries,
            "model_files": [{"name": m.name, "path": m.path, "size": m.size, "sha256": m.sha256, "ok": m.ok,
                             "problem": m.problem or None} for m in check.model_files],
            "details": check.details})
    usable = [c["name"] for c in checks if c["ok"] and c["enabled"]]
    if as_json:
        context.print_json({"finders": checks, "usable": usable})
    else:
        out = _out_console()
        for c in checks:
            state = "[green]ok[/]" if c["ok"] else f"[red]cannot run[/]: {c['reason']}"
            enabled = "" if c["enabled"] else " (disabled by setting)"
            out.print(f"[bold]{c['name']}[/]{enabled}: {state}")
            for lib, version in c["libraries"].items():
                out.print(f"  {lib} {version or 'not installed'}", highlight=False)
            for m in c["model_files"]:
                mark = "ok" if m["ok"] else m["problem"]
                out.print(f"  {m['name']}: {m['path']} ({m['size'] or 0:,} bytes, {mark})", highlight=False)
            for key, value in c["details"].items():
                out.print(f"  {key}: {value}", highlight=False)
        if not usable:
            out.print("[red]no enabled finder can run: faces cannot detect faces on this machine[/]")
    if not usable:
        raise typer.Exit(1)


def _out_console():
    from rich.console import Console

    return Console()


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("scan")(scan)
    app.command("images")(images)
    app.command("faces")(faces)
    app.command("stats")(stats)
    app.command("selfcheck")(selfcheck)
