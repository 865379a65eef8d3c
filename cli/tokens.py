"""``segops tokens create|list|revoke``: bearer tokens of the membership API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cli import context
from cli.output import err, out

tokens_app = typer.Typer(help="Bearer tokens of the membership API.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _engine():
    return context.engine()


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="What the token is for (unique).")],
    segment: Annotated[
        list[str],
        typer.Option("--segment", "-s", help="A segment it may read (repeat), or '*' for all."),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Create a token; its text is printed once and never stored."""
    from commands.tokens import create_token

    text, view = create_token(_engine(), name=name, segments=segment)
    if json_out:
        context.print_json({**view.to_dict(), "token": text})
        return
    sys.stdout.write(text + "\n")
    err.print(
        f"token '{escape(name)}' for {', '.join(view.segments)}: keep it now, it is not shown again"
    )


@tokens_app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """The tokens (never their text), with their segments and state."""
    from commands.tokens import list_tokens

    rows = list_tokens(_engine())
    if json_out:
        context.print_json([r.to_dict() for r in rows])
        return
    table = Table(title="API tokens", title_justify="left")
    for col in ("name", "starts with", "segments", "created", "state"):
        table.add_column(col, overflow="fold")
    for r in rows:
        state = f"revoked {r.revoked_at[:10]}" if r.revoked_at else "live"
        table.add_row(
            escape(r.name), r.prefix + "…", escape(", ".join(r.segments)), r.created_at[:10], state
        )
    out.print(table)


@tokens_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token: it is refused from the next request on."""
    from commands.tokens import revoke_token

    view = revoke_token(_engine(), name=name)
    out.print(f"revoked token '{escape(view.name)}'")
