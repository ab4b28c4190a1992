"""A task's mounts on its node, as moby's swarm executor handles them (pure; no I/O).

* `check` — moby's `validateMounts`, run before anything else is done for the task: absolute
  targets, absolute bind sources, volume sources that are names, tmpfs without a source.
* `expand` — SwarmKit's `expandMounts`: the task's templates in the source, the target, the
  volume labels and the driver options (`source=data-{{.Task.Slot}}`).
* `volume_requests` — the volumes to create before the container (moby's `createVolumes`):
  each named volume mount with a driver config (the CLI sends one with any volume option)
  becomes `POST /volumes/create` with its driver, driver options and labels, so the volume
  has exactly those on the node. The engine answers with the volume of that name if it
  exists with the same driver — its options are not changed, as with Docker — and refuses
  another driver (`driver 'x' already has volume 'v'`). An anonymous mount (no source) gets
  its volume from the container create, with the same driver, options and labels (Docker
  would create a second, unused volume with a random name for it).
"""

from __future__ import annotations

from typing import Any

from shoal.api import template
from shoal.api.models import Mount


def check(mounts: list[Mount]) -> str | None:
    """moby's `validateMounts`: its message for the first mount it refuses, or None."""
    for m in mounts:
        target, source = m.target or "", m.source or ""
        if not target.startswith("/") and m.type != "npipe":
            return f"invalid mount target, must be an absolute path: {target}"
        if m.type == "bind" and not source.startswith("/"):
            return f"invalid bind mount source, must be an absolute path: {source}"
        if m.type == "volume" and source.startswith("/"):
            return f"invalid volume mount source, must not be an absolute path: {source}"
        if m.type == "tmpfs" and source:
            return "invalid tmpfs source, source must be empty"
        if m.type == "npipe" and not source:
            return "invalid npipe source, source must not be empty"
    return None


def expand(mount: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    """One mount of the engine's `HostConfig.Mounts` with the task's templates expanded."""
    for key in ("Source", "Target"):
        if isinstance(mount.get(key), str):
            mount[key] = template.expand(mount[key], ctx)
    vol = mount.get("VolumeOptions") or {}
    for values in (vol.get("Labels"), (vol.get("DriverConfig") or {}).get("Options")):
        if values:
            values.update((k, template.expand(v, ctx)) for k, v in values.items())
    return mount


def volume_requests(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `POST /volumes/create` bodies of the (expanded) engine mounts."""
    out = []
    for m in mounts:
        config = (m.get("VolumeOptions") or {}).get("DriverConfig")
        if m.get("Type") != "volume" or config is None or not m.get("Source"):
            continue
        out.append(
            {
                "Name": m["Source"],
                "Driver": config.get("Name") or "local",
                "DriverOpts": config.get("Options") or {},
                "Labels": m["VolumeOptions"].get("Labels") or {},
            }
        )
    return out


def differs(request: dict[str, Any], volume: dict[str, Any]) -> str | None:
    """How the engine's volume of that name differs from what the task asked for (the
    engine keeps a volume's options once it exists), or None."""
    asked = (request["Driver"], request["DriverOpts"])
    found = (volume.get("Driver"), volume.get("Options") or {})
    if asked == found:
        return None
    return (
        f"volume {request['Name']} exists with driver {found[0]} and options {found[1]}, "
        f"not {asked[0]} and {asked[1]}: the existing volume is used"
    )
