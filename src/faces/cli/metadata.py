"""Commands of the 'metadata' group: names in the image files (exiftool).

- ``faces write-metadata [IMAGE_ID...] [--all]``: write the confirmed names into the files (or sidecars);
- ``faces read-metadata PATH``: show the named face regions in a file and its sidecars;
- ``faces import-metadata [IMAGE_ID...] [--all]``: take regions in files of the library in as confirmed names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from faces.cli import context


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=context.console, transient=True, disable=not context.console.is_terminal)


def write_metadata(
    image_ids: Optional[list[int]] = typer.Argument(None, help="Images to write (ids from 'faces images')."),
    all_images: bool = typer.Option(False, "--all", help="Every image with a confirmed name."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Write the confirmed names into the image files: face regions (MWG and Microsoft), keywords and
    PersonInImage, kept apart from other programs' tags. Exit code 1 if a file failed."""
    from faces.metadata import ExifToolUnavailable, OptedOut, write_names

    if bool(image_ids) == all_images:
        context.fail("give image ids, or --all for every image with a confirmed name")
    settings = context.effective_settings()
    owner_id = context.owner_id()
    bar = _progress("writing names")
    task = bar.add_task("write", total=None)

    def on_progress(done: int, total: int, _path: str) -> None:
        bar.update(task, total=total, completed=done)

    try:
        with bar:
            report = write_names(context.store(), settings, owner_id, None if all_images else image_ids,
                                 progress=on_progress)
    except (OptedOut, ExifToolUnavailable) as exc:
        context.fail(exc.message)
    if as_json:
        context.print_json(report.as_dict())
    else:
        context.console.print(f"{report.written} files written, {report.unchanged} already up to date, "
                              f"{len(report.failed)} failed (of {report.images} images).", highlight=False)
        for failure in report.failed:
            context.console.print(f"  image {failure.image_id}: {failure.message}", highlight=False,
                                  markup=False)
    if report.failed:
        raise typer.Exit(1)


def read_metadata(
    path: Path = typer.Argument(..., help="An image file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Show the named face regions in an image file and its sidecars (boxes in upright pixels)."""
    from faces.metadata import ExifTool, ExifToolUnavailable, read_regions

    if not path.is_file():
        context.fail(f"{path} is not a file")
    try:
        with ExifTool() as tool:
            regions = read_regions(tool, path.resolve())
    except ExifToolUnavailable as exc:
        context.fail(exc.message)
    data = [{"name": r.name, "box": list(r.box), "kind": r.kind, "file": r.file} for r in regions]
    if as_json:
        context.print_json({"path": str(path), "regions": data})
        return
    if not data:
        context.console.print(f"no named face regions in {path}", highlight=False, markup=False)
    for r in data:
        context.console.print(f"{r['name']}: {r['box']} ({r['kind']}, {r['file']})", highlight=False, markup=False)


def import_metadata(
    image_ids: Optional[list[int]] = typer.Argument(None, help="Images to read (ids from 'faces images')."),
    all_images: bool = typer.Option(False, "--all", help="Every image of the library."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Take the named face regions in the library's files in as confirmed names (faces already named in
    faces keep their names)."""
    from sqlalchemy import select

    from faces.metadata import ExifTool, ExifToolUnavailable, import_regions
    from faces.metadata.reader import ImportReport
    from faces.store.models import Image

    if bool(image_ids) == all_images:
        context.fail("give image ids, or --all for every image of the library")
    settings = context.effective_settings()
    owner_id = context.owner_id()
    store = context.store()
    if all_images:
        with store.session() as session:
            image_ids = list(session.scalars(select(Image.id).where(Image.owner_id == owner_id).order_by(Image.id)))
    total = ImportReport()
    bar = _progress("reading regions")
    task = bar.add_task("read", total=len(image_ids))
    try:
        with ExifTool() as tool, bar:
            for start in range(0, len(image_ids), 200):
                part = image_ids[start:start + 200]
                report = import_regions(store, settings, owner_id, part, exiftool=tool)
                for key in ("images", "regions", "created", "named", "kept"):
                    setattr(total, key, getattr(total, key) + getattr(report, key))
                bar.update(task, advance=len(part))
    except ExifToolUnavailable as exc:
        context.fail(exc.message)
    if as_json:
        context.print_json(total.as_dict())
    else:
        context.console.print(f"{total.regions} named regions in {total.images} images: {total.created} faces "
                              f"added, {total.named} named, {total.kept} kept as they were.", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("write-metadata")(write_metadata)
    app.command("read-metadata")(read_metadata)
    app.command("import-metadata")(import_metadata)
