"""Commands of the 'server' group: ``faces serve`` and the accounts (``faces user add/list/passwd``)."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Optional

import typer
from rich.table import Table
from sqlalchemy import select

from faces.cli import context

user_app = typer.Typer(help="Accounts: who may log in to the web page.", no_args_is_help=True)


def _read_new_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        if not sys.stdin.isatty():
            context.fail("no terminal to ask for the password: use --password-stdin")
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            context.fail("the two passwords differ")
    return password


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default 127.0.0.1: this machine only)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port to listen on (default 8000)."),
    proxy_headers: bool = typer.Option(False, "--proxy-headers",
                                       help="Trust X-Forwarded-* from the reverse proxy at 127.0.0.1 (for https)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Web server processes (more serve more people at once; login rate limits "
                                     "then count per process)."),
) -> None:
    """Run the web page and its JSON API (FastAPI on uvicorn)."""
    import uvicorn

    from faces.web.app import create_app
    from faces.web.auth import ensure_first_admin

    settings = context.settings()
    store = context.store()
    with store.session() as session:
        first = ensure_first_admin(session)
    host = host or settings.host
    port = port or settings.port
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown if host not in ('0.0.0.0', '::') else '127.0.0.1'}:{port}/"
    if first:
        username, password = first
        typer.echo(f"Created the administrator account.\n  Log in at {url} as {username!r} "
                   f"with the password: {password}\n  Change it with: faces user passwd {username}")
    typer.echo(f"faces is running at {url} (data in {settings.data_dir.resolve()}); Ctrl+C stops it.", err=True)
    sys.stdout.flush()
    options = dict(host=host, port=port, log_level="warning", proxy_headers=proxy_headers,
                   forwarded_allow_ips="127.0.0.1" if proxy_headers else None, server_header=False)
    if workers > 1:
        # each worker process builds its own app from the environment: pass the data directory on
        os.environ["FACES_DATA_DIR"] = str(settings.data_dir.resolve())
        settings.get_secret_key()  # created once here, so that every worker signs sessions with the same key
        store.dispose()
        uvicorn.run("faces.web.app:create_app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.run(create_app(settings, store), **options)


@user_app.command("add")
def user_add(
    username: str = typer.Argument(..., help="The new account's user name (letters a-z, digits, . _ -)."),
    admin: bool = typer.Option(False, "--admin", help="May create accounts and change server settings."),
    display_name: str = typer.Option("", "--display-name", help="The name shown in the page."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Create an account that can log in to the web page."""
    from faces.web.auth import AccountError, create_user

    password = _read_new_password(password_stdin)
    try:
        with context.store().session() as session:
            user = create_user(session, username, password, is_admin=admin, display_name=display_name)
            name = user.username
    except AccountError as exc:
        context.fail(str(exc))
    typer.echo(f"Created the account {name!r}{' (administrator)' if admin else ''}.")


@user_app.command("list")
def user_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the accounts."""
    from faces.store.models import User

    with context.store().session() as session:
        rows = [{"id": u.id, "username": u.username, "display_name": u.display_name, "admin": u.is_admin,
                 "can_log_in": bool(u.password_hash), "created_at": u.created_at}
                for u in session.scalars(select(User).order_by(User.username))]
    if as_json:
        context.print_json(rows)
        return
    table = Table("user", "display name", "admin", "can log in")
    for row in rows:
        table.add_row(row["username"], row["display_name"], "yes" if row["admin"] else "",
                      "yes" if row["can_log_in"] else "no (no password)")
    from rich.console import Console

    Console().print(table)


@user_app.command("passwd")
def user_passwd(
    username: str = typer.Argument(..., help="The account."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
) -> None:
    """Set an account's password (ends its sessions in the web page)."""
    from faces.store.users import UnknownUserError, get_user
    from faces.web.auth import AccountError, set_password

    password = _read_new_password(password_stdin)
    try:
        with context.store().session() as session:
            set_password(session, get_user(session, username.strip().lower()), password)
    except (AccountError, UnknownUserError) as exc:
        context.fail(str(exc))
    typer.echo(f"The password of {username!r} is changed.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("serve")(serve)
    app.add_typer(user_app, name="user")
