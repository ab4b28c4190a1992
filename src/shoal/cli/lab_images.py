"""`shoal lab images`: the lab's real images, built from Debian packages (``shoal.lab.debian``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import typer

from shoal.lab import lab as ops
from shoal.lab.debian import build as builder
from shoal.lab.debian import publish
from shoal.lab.debian.recipes import RECIPES, Recipe, select
from shoal.lab.state import LabError

app = typer.Typer(
    help="Real images (nginx, postgres, mariadb, wordpress, a FastAPI app, debian) built from "
    "Debian bookworm packages into a cache ($SHOAL_IMAGE_CACHE, default "
    f"{builder.DEFAULT_CACHE}), for the lab registry or any engine.",
    no_args_is_help=True,
)

NamesArg = typer.Argument(None, help="images: nginx, postgres … (default: all)")


def _progress(msg: str) -> None:
    typer.echo(f"  {msg}", err=True)


def _select(names: list[str] | None) -> list[Recipe]:
    try:
        return select(names)
    except KeyError as e:
        typer.echo(f"shoal lab images: {e.args[0]}", err=True)
        raise typer.Exit(2) from None


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f}MB"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)  # fmt: skip


@app.command()
def build(
    names: list[str] | None = NamesArg,
    rebuild: bool = typer.Option(False, "--rebuild", help="build again, cached or not"),
) -> None:
    """Build the images' rootfs tarballs into the cache (those cached are kept)."""
    try:
        built = builder.build(_select(names), rebuild=rebuild, progress=_progress)
    except builder.BuildError as e:
        typer.echo(f"shoal lab images: {e}", err=True)
        raise typer.Exit(1) from None
    rows = [("IMAGE", "SIZE", "BUILT", "TARBALL")]
    rows += [
        (b.recipe.ref(), _mb(b.size), "cached" if b.cached else f"{b.seconds:.0f}s", str(b.path))
        for b in built
    ]
    typer.echo(_table(rows))


@app.command("ls")
def ls() -> None:
    """The images: name, what they are, whether the cache has them."""
    rows = [("IMAGE", "CACHED", "WHAT")]
    for recipe in RECIPES.values():
        hit = builder.cached(recipe)
        rows.append((recipe.ref(), _mb(hit.size) if hit else "-", recipe.summary))
    typer.echo(_table(rows))


@app.command()
def push(
    names: list[str] | None = NamesArg,
    name: str = typer.Option(
        os.environ.get("SHOAL_LAB") or "lab", "--name", "-n", help="the lab ($SHOAL_LAB)"
    ),
) -> None:
    """Push the images to the lab's registry (built first unless cached): nodes then pull
    <registry>/shoal-lab/<image>:<tag>."""
    try:
        refs = ops.push_real_images(name, [r.name for r in _select(names)], _progress)
    except (LabError, builder.BuildError, RuntimeError, OSError) as e:
        typer.echo(f"shoal lab images: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n".join(refs))


@app.command()
def load(
    names: list[str] | None = NamesArg,
    host: str = typer.Option(
        os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
        "--host",
        "-H",
        help="the engine's unix socket ($DOCKER_HOST)",
    ),
    prefix: str = typer.Option("shoal-lab", "--prefix", help="the images' repository prefix"),
) -> None:
    """Import the images into an engine (built first unless cached) as <prefix>/<image>:<tag>."""
    try:
        refs = publish.ensure(host, _select(names), prefix, progress=_progress)
    except (builder.BuildError, RuntimeError, OSError, ValueError) as e:
        typer.echo(f"shoal lab images: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo("\n".join(refs))
