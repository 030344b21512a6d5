"""Commands of the 'portability' group: ``faces export``, ``faces import`` and ``faces sync ...`` (clones)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from faces.cli import context

sync_app = typer.Typer(help="Clone sync: keep one library's faces, names and marks equal on two servers.",
                       no_args_is_help=True)
_USER = typer.Option(None, "--user", help="The library (owner account); default: the global --user, else admin.")


def export(out: Path = typer.Argument(..., help="The file to write (gzip-compressed JSON, e.g. faces.json.gz)."),
           user: Optional[str] = _USER) -> None:
    """Export the library's faces, names, marks and permissions to one file."""
    from faces.portability import exchange, records

    owner_id = context.owner_id(user)
    settings = context.settings()
    with context.store().session() as session:
        document = exchange.export_library(session, owner_id, records.server_id(settings.data_dir))
    try:
        exchange.write_export(document, out)
    except OSError as exc:
        context.fail(f"cannot write {out}: {exc.strerror or exc}")
    typer.echo(f"Exported {len(document['faces'])} faces, {len(document['names'])} names, "
               f"{len(document['marks'])} finder marks and {len(document['permissions'])} permissions "
               f"of {len(document['images'])} images to {out}.")


def import_(file: Path = typer.Argument(..., help="A file written by 'faces export' or the page's Export button."),
            user: Optional[str] = _USER,
            as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Import an export file: images are matched by content hash; faces of images not here yet wait for them."""
    from faces.portability import exchange
    from faces.sharing.admin_settings import effective_settings

    owner_id = context.owner_id(user)
    try:
        if file.stat().st_size > exchange.MAX_FILE_BYTES:
            context.fail(f"{file} is larger than {exchange.MAX_FILE_BYTES // (1024 * 1024)} MiB")
        data = file.read_bytes()
    except OSError as exc:
        context.fail(f"cannot read {file}: {exc.strerror or exc}")
    try:
        document = exchange.read_export(data)
        with context.store().session() as session:
            result = exchange.import_library(session, effective_settings(session, context.settings()), owner_id,
                                             document)
    except exchange.ImportRefused as exc:
        context.fail(f"{file} was not imported, nothing changed: {exc}")
    if as_json:
        context.print_json(result.as_dict())
        return
    if result.unchanged:
        typer.echo("Nothing to change: this library already holds everything in the file.")
        return
    r = result.applied
    typer.echo(f"Imported: {r.faces} faces, {r.names} names, {r.marks} finder marks, {r.permissions} permissions "
               f"changed; {result.images_known} images matched, {result.images_missing} not here yet "
               f"({r.pending} faces and marks wait for them).")


@sync_app.command("token")
def sync_token(label: str = typer.Option("", "--label", help="A note to recognise the token by."),
               user: Optional[str] = _USER) -> None:
    """Create a token that lets a clone pull this library (shown once; give it to 'faces sync add-peer')."""
    from faces.portability.sync import create_token

    owner_id = context.owner_id(user)
    with context.store().session() as session:
        token = create_token(session, owner_id, label)
    typer.echo(token)
    Console(stderr=True).print("Keep it secret: anyone with it can read this library's faces and names.")


@sync_app.command("add-peer")
def sync_add_peer(url: str = typer.Argument(..., help="The other server's address, e.g. http://10.0.0.2:8000"),
                  token: str = typer.Argument(..., help="A token created there with 'faces sync token'."),
                  user: Optional[str] = _USER) -> None:
    """Pull this library's changes from another server (run it on both servers for sync both ways)."""
    from faces.portability.sync import SyncError, add_peer

    owner_id = context.owner_id(user)
    try:
        with context.store().session() as session:
            peer = add_peer(session, owner_id, url, token)
            peer_id, peer_url = peer.id, peer.url
    except SyncError as exc:
        context.fail(str(exc))
    typer.echo(f"Added peer {peer_id}: {peer_url}. Run 'faces sync now' or set sync_interval for automatic sync.")


@sync_app.command("remove-peer")
def sync_remove_peer(peer_id: int = typer.Argument(..., help="The peer's number (see 'faces sync status')."),
                     user: Optional[str] = _USER) -> None:
    """Stop syncing with a peer."""
    from faces.portability.sync import remove_peer

    owner_id = context.owner_id(user)
    with context.store().session() as session:
        if not remove_peer(session, owner_id, peer_id):
            context.fail(f"this library has no peer {peer_id}")
    typer.echo(f"Removed peer {peer_id}.")


@sync_app.command("now")
def sync_now(user: Optional[str] = _USER, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Pull every change the library's peers made since the last sync."""
    from faces.portability.sync import sync_owner

    owner_id = context.owner_id(user)
    results = sync_owner(context.store(), context.settings(), owner_id)
    if as_json:
        context.print_json(results)
    else:
        if not results:
            typer.echo("This library has no peer: add one with 'faces sync add-peer URL TOKEN'.")
        for r in results:
            if "error" in r:
                typer.echo(f"peer {r['peer_id']}: failed: {r['error']}", err=True)
            else:
                typer.echo(f"{r['peer']}: {r['entries']} changes read, {r['faces']} faces, {r['names']} names, "
                           f"{r['marks']} marks, {r['deleted']} deletions applied.")
    if any("error" in r for r in results):
        raise typer.Exit(1)


@sync_app.command("status")
def sync_status(user: Optional[str] = _USER, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the library's peers, when they were last synced, and the last error."""
    from faces.portability import records
    from faces.portability.sync import sync_state

    owner_id = context.owner_id(user)
    with context.store().session() as session:
        state = sync_state(session, owner_id)
    state["server_id"] = records.server_id(context.settings().data_dir)
    if as_json:
        context.print_json(state)
        return
    table = Table("peer", "address", "position", "last sync (UTC)", "last error")
    for p in state["peers"]:
        table.add_row(str(p["id"]), p["url"], str(p["cursor"]), p["last_sync_at"] or "never", p["last_error"] or "")
    console = Console()
    console.print(table)
    console.print(f"This server: {state['server_id']}; {state['tokens']} tokens; {state['log_entries']} changes "
                  f"in the log; {state['pending_imports']} images awaited by imports.", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("export")(export)
    app.command("import")(import_)
    app.add_typer(sync_app, name="sync")
