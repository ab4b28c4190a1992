"""`shoal`: the shoal command line (`shoal lab …`, `shoal swarm backup|restore`). The daemon
itself is `shoald`."""

from __future__ import annotations

import typer

from shoal.cli.lab import app as lab_app
from shoal.cli.swarm import app as swarm_app

app = typer.Typer(
    help="shoal: Docker Swarm mode in Python. The daemon is `shoald`; drive it with the "
    "docker CLI.",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")
app.add_typer(swarm_app, name="swarm")


if __name__ == "__main__":
    app()
