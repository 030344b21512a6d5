"""Commands of the 'names' group: name, confirm, reject, unknown, ignore, reset, guess, names, groups, merge,
rename, undo, name-group, ungroup.

The command line acts as the library's owner (``--user``, default admin). Every command has ``--json``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from sqlalchemy import func, select

from faces.cli import context


def _run(work: Callable, as_json: bool, describe: Callable[[object], str]) -> None:
    """Run ``work(session, settings, owner_id)`` in one transaction; print its result or a clear error."""
    from faces.naming.actions import NamingError
    from faces.store.users import UnknownUserError, resolve_owner

    store = context.store()
    try:
        with store.session() as session:
            owner_id = resolve_owner(session, context.username()).id
            settings = _settings(session)
            result = work(session, settings, owner_id)
    except (NamingError, UnknownUserError) as exc:
        context.fail(str(exc))
    if as_json:
        context.print_json(result if isinstance(result, (dict, list)) else _outcome_json(result))
    else:
        context.console.print(describe(result), highlight=False, markup=False)


def _settings(session):  # noqa: ANN001, ANN202
    """The settings with the admin's changes from the web page applied (tolerances, enabled finders)."""
    try:
        from faces.sharing.admin_settings import effective_settings
    except ImportError:  # pragma: no cover - sharing is part of faces
        return context.settings()
    return effective_settings(session, context.settings())


def _outcome_json(outcome) -> dict:  # noqa: ANN001
    return {"faces": outcome.face_ids, "images": outcome.image_ids, "name_id": outcome.name_id}


def _face_action(action_name: str, verb: str) -> Callable:
    def command(
        face_id: int = typer.Argument(..., help="The face's id (see `faces faces`)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    ) -> None:
        from faces.naming import actions

        action = getattr(actions, action_name)
        _run(lambda s, st, owner: action(s, st, owner, owner, face_id), as_json, lambda _: f"face {face_id} {verb}")

    return command


def name(
    face_id: Optional[int] = typer.Argument(None, help="The face's id (see `faces faces`)."),
    name_text: Optional[str] = typer.Argument(None, metavar="NAME", help="The name; empty resets the face."),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="A CSV file with columns face_id,name."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Give a face a name (confirmed), or many faces from a CSV file (face_id,name)."""
    from faces.naming import actions

    if csv_file is not None:
        if face_id is not None or name_text is not None:
            context.fail("give either FACE_ID NAME or --csv FILE, not both")
        items = _read_csv(csv_file)
        _run(lambda s, st, owner: actions.set_names(s, st, owner, owner, items), as_json,
             lambda out: f"named {len(out.face_ids)} faces")
        return
    if face_id is None or name_text is None:
        context.fail("give FACE_ID and NAME (an empty NAME \"\" resets the face), or --csv FILE")
    _run(lambda s, st, owner: actions.set_name(s, st, owner, owner, face_id, name_text), as_json,
         lambda _: f"face {face_id} is now {name_text!r}" if name_text.strip() else f"face {face_id} reset")


def _read_csv(path: Path) -> list[tuple[int, str]]:
    if not path.is_file():
        context.fail(f"no such file: {path}")
    items = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"face_id", "name"} <= {f.strip() for f in reader.fieldnames}:
                context.fail(f"{path}: the first line must name the columns face_id,name")
            for line, row in enumerate(reader, start=2):
                row = {k.strip(): v for k, v in row.items() if k}
                try:
                    items.append((int(row["face_id"]), row.get("name") or ""))
                except (TypeError, ValueError):
                    context.fail(f"{path}, line {line}: face_id {row.get('face_id')!r} is not a number")
    except UnicodeDecodeError:
        context.fail(f"{path}: not a UTF-8 text file")
    return items


def guess(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """Recompute every guess and group of the library."""
    from faces.naming.refresh import refresh_guesses

    def work(session, settings, owner_id):  # noqa: ANN001, ANN202
        result = refresh_guesses(session, settings, owner_id)
        return {"examined": result.examined, "guessed": result.guessed, "withdrawn": result.withdrawn,
                "group_changes": result.grouped}

    _run(work, as_json, lambda r: f"looked at {r['examined']} faces: {r['guessed']} new guesses, "
                                  f"{r['withdrawn']} withdrawn, {r['group_changes']} group changes")


def names(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """List the library's names with how many faces are confirmed and guessed as each."""
    from faces.store.models import Face, FaceState, Name

    def work(session, settings, owner_id):  # noqa: ANN001, ANN202
        confirmed = dict(session.execute(
            select(Face.name_id, func.count()).where(Face.owner_id == owner_id, Face.state == FaceState.CONFIRMED)
            .group_by(Face.name_id)).all())
        guessed = dict(session.execute(
            select(Face.guess_name_id, func.count()).where(Face.owner_id == owner_id,
                                                           Face.state == FaceState.GUESSED)
            .group_by(Face.guess_name_id)).all())
        rows = session.scalars(select(Name).where(Name.owner_id == owner_id).order_by(Name.name)).all()
        return [{"id": n.id, "name": n.name, "contact_user_id": n.contact_user_id,
                 "confirmed": confirmed.get(n.id, 0), "guessed": guessed.get(n.id, 0)} for n in rows]

    def describe(rows) -> str:  # noqa: ANN001
        if not rows:
            return "no names yet"
        return "\n".join(f"{r['name']}: {r['confirmed']} confirmed, {r['guessed']} guessed" for r in rows)

    _run(work, as_json, describe)


def groups(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """List the groups of look-alike faces without a name (two faces or more), largest first."""
    from faces.store.models import Face, FaceState, Name

    def work(session, settings, owner_id):  # noqa: ANN001, ANN202
        rows = session.execute(
            select(Face.cluster_id, Face.id, Face.image_id, Face.guess_name_id)
            .where(Face.owner_id == owner_id, Face.cluster_id.is_not(None),
                   Face.state.in_([FaceState.UNNAMED, FaceState.GUESSED]))
            .order_by(Face.cluster_id, Face.id)).all()
        names_by_id = dict(session.execute(select(Name.id, Name.name).where(Name.owner_id == owner_id)).all())
        found: dict[int, dict] = {}
        for cluster, face_id, image_id, guess_id in rows:
            group = found.setdefault(cluster, {"group": cluster, "size": 0, "faces": [], "images": [],
                                               "guesses": {}})
            group["size"] += 1
            group["faces"].append(face_id)
            group["images"].append(image_id)
            if guess_id:
                label = names_by_id.get(guess_id)
                group["guesses"][label] = group["guesses"].get(label, 0) + 1
        return sorted((g for g in found.values() if g["size"] >= 2), key=lambda g: (-g["size"], g["group"]))

    def describe(rows) -> str:  # noqa: ANN001
        if not rows:
            return "no groups"
        return "\n".join(f"group {g['group']}: {g['size']} faces {g['faces']}" for g in rows)

    _run(work, as_json, describe)


def merge(
    name_a: str = typer.Argument(..., help="The name that stays."),
    name_b: str = typer.Argument(..., help="The name whose faces move to NAME_A; it disappears."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Merge NAME_B into NAME_A: every face of NAME_B moves to NAME_A (undo with `faces undo`)."""
    from faces.naming import actions

    _run(lambda s, st, owner: actions.merge(s, st, owner, owner, name_a, name_b), as_json,
         lambda out: f"merged {name_b!r} into {name_a!r}: {len(out.face_ids)} faces moved")


def rename(
    old: str = typer.Argument(..., help="The current name."),
    new: str = typer.Argument(..., help="The new name (must not exist yet: merge instead)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Rename a name; all its faces follow."""
    from faces.naming import actions

    _run(lambda s, st, owner: actions.rename(s, st, owner, owner, old, new), as_json,
         lambda _: f"renamed {old!r} to {new!r}")


def undo(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")) -> None:
    """Undo the last merge or group naming."""
    from faces.naming import actions

    _run(lambda s, st, owner: {"undone": actions.undo(s, st, owner, owner)}, as_json, lambda r: r["undone"])


def name_group(
    group: int = typer.Argument(..., help="The group's id (see `faces groups`)."),
    name_text: str = typer.Argument(..., metavar="NAME", help="The name every face of the group gets."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Give every face of a group the same confirmed name (undo with `faces undo`)."""
    from faces.naming import actions

    _run(lambda s, st, owner: actions.name_group(s, st, owner, owner, group, name_text), as_json,
         lambda out: f"named {len(out.face_ids)} faces {name_text!r}")


def ungroup(
    face_ids: list[int] = typer.Argument(..., help="Faces to take out of their group (they form a new one)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
) -> None:
    """Take faces out of their group."""
    from faces.naming import actions

    _run(lambda s, st, owner: actions.split_group(s, st, owner, owner, face_ids), as_json,
         lambda out: f"took {len(out.face_ids)} faces out of their group")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("name")(name)
    for command, action, verb in (("confirm", "confirm", "confirmed"), ("reject", "reject", "guess rejected"),
                                  ("unknown", "mark_unknown", "marked unknown"), ("ignore", "ignore", "ignored"),
                                  ("reset", "reset", "reset")):
        function = _face_action(action, verb)
        function.__doc__ = {
            "confirm": "Confirm the guessed name of a face.",
            "reject": "Reject the guessed name of a face (it is never guessed for that face again).",
            "unknown": "Mark a face as someone unknown (it is not guessed again).",
            "ignore": "Ignore a face (not a face, or not of interest).",
            "reset": "Take a face back to unnamed.",
        }[command]
        app.command(command)(function)
    app.command("guess")(guess)
    app.command("names")(names)
    app.command("groups")(groups)
    app.command("merge")(merge)
    app.command("rename")(rename)
    app.command("undo")(undo)
    app.command("name-group")(name_group)
    app.command("ungroup")(ungroup)
