"""Secrets and configs in a task's container: the files the swarm gives it.

`task_files()` (pure) turns a task's references into files: where each is in the container
(a secret's relative target under `/run/secrets`, a config's under `/`), its payload (a
template expanded for the task), owner and mode. `TaskFiles` (I/O) writes them on a tmpfs of
this node's own (`<exec-root>/files/<task-id>/<n>-<secret-or-config-id>`; directories root-only)
and gives the container one read-only bind mount per file, as dockerd does. Nothing of them
touches a disk: not shoald's state directory, not the engine's data root. A task's files go
when the task is over or leaves the node.

The payloads come with the assignments, only to a node with a task that refers to them
(`shoal.rpc.messages.Assignment`), and the worker forgets them with the node's last such task.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.api import template
from shoal.api.errors import TaskRejected
from shoal.api.models import (
    Config,
    FileTarget,
    NodeDescription,
    Payload,
    Secret,
    Task,
    config_path,
    secret_path,
    templated,
)

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o444
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2


@dataclass(frozen=True)
class TaskFile:
    id: str  # the secret's or config's
    path: str  # in the container
    data: bytes = field(repr=False)
    uid: int = 0
    gid: int = 0
    mode: int = DEFAULT_MODE


@dataclass
class Payloads:
    """Secrets and configs by ID, as the assignments brought them."""

    secrets: dict[str, Secret] = field(default_factory=dict)
    configs: dict[str, Config] = field(default_factory=dict)

    def update(self, secrets: Iterable[Secret], configs: Iterable[Config]) -> None:
        self.secrets.update((s.id, s) for s in secrets)
        self.configs.update((c.id, c) for c in configs)

    def of(self, task: Task) -> Payloads:
        """Those the task refers to."""
        secrets, configs = references(task)
        return Payloads(
            {i: self.secrets[i] for i in secrets if i in self.secrets},
            {i: self.configs[i] for i in configs if i in self.configs},
        )

    def keep(self, tasks: Iterable[Task]) -> None:
        """Forget those no task in `tasks` refers to."""
        secrets: set[str] = set()
        configs: set[str] = set()
        for t in tasks:
            s, c = references(t)
            secrets.update(s)
            configs.update(c)
        self.secrets = {i: v for i, v in self.secrets.items() if i in secrets}
        self.configs = {i: v for i, v in self.configs.items() if i in configs}


def references(task: Task) -> tuple[list[str], list[str]]:
    """The IDs of the secrets and of the configs a task refers to."""
    cs = task.spec.container_spec
    if cs is None:
        return [], []
    return [r.secret_id for r in cs.secrets or []], [r.config_id for r in cs.configs or []]


def task_files(
    task: Task,
    service_name: str,
    payloads: Payloads,
    service_labels: dict[str, str] | None = None,
    node: NodeDescription | None = None,
) -> list[TaskFile]:
    """The files of the task's secrets, then its configs (a config's file shadows a secret's
    at the same path, as with dockerd). Raises TaskRejected for what cannot be made."""
    cs = task.spec.container_spec
    if cs is None:
        return []
    ctx = template.for_task(task, service_name, service_labels, node)
    env = dict(e.split("=", 1) for e in (template.expand(v, ctx) for v in cs.env or []) if "=" in e)
    by_target = {
        "secret": {r.file.name: r.secret_id for r in cs.secrets or [] if r.file is not None},
        "config": {r.file.name: r.config_id for r in cs.configs or [] if r.file is not None},
    }

    def payload_of(what: str, target: str) -> str:
        found = by_target[what].get(target)
        obj = (payloads.secrets if what == "secret" else payloads.configs).get(found or "")
        if obj is None:
            raise ValueError(f"{what} target {target} not found")
        return (obj.spec.data or b"").decode(errors="replace")

    funcs = {
        "env": lambda name: env.get(name, ""),
        "secret": lambda target: payload_of("secret", target),
        "config": lambda target: payload_of("config", target),
    }

    def data_of(what: str, obj: Payload) -> bytes:
        raw = obj.spec.data or b""
        if not templated(obj):
            return raw
        failed = (
            f"unable to get {what} from {what} store: failed to expand templated {what} {obj.id}"
        )
        if obj.spec.templating is None or obj.spec.templating.name != "golang":
            raise TaskRejected(f"{failed}: unrecognized template type")
        try:
            return template.render(raw.decode(), ctx, funcs).encode()
        except (template.TemplateError, UnicodeDecodeError) as e:
            raise TaskRejected(f"{failed}: {e}") from None

    out = []
    for sref in cs.secrets or []:
        secret = payloads.secrets.get(sref.secret_id)
        if secret is None or sref.file is None:
            raise TaskRejected(f"secret {sref.secret_name} not found on this node")
        data = data_of("secret", secret)
        out.append(_file(secret, secret_path(sref.file.name), data, sref.file))
    for cref in cs.configs or []:
        if cref.file is None:
            continue  # a runtime config (credential specs, Windows only)
        config = payloads.configs.get(cref.config_id)
        if config is None:
            raise TaskRejected(f"config {cref.config_name} not found on this node")
        data = data_of("config", config)
        out.append(_file(config, config_path(cref.file.name), data, cref.file))
    return out


def _file(obj: Payload, path: str, data: bytes, target: FileTarget) -> TaskFile:
    what = "secret" if isinstance(obj, Secret) else "config"
    owner = []
    for field_name, raw in (("UID", target.uid), ("GID", target.gid)):
        try:
            owner.append(int(raw or "0"))
        except ValueError:
            raise TaskRejected(
                f"{what} {obj.name}: invalid {field_name} {raw!r}, not a number"
            ) from None
    mode = DEFAULT_MODE if target.mode is None else target.mode & 0o7777
    return TaskFile(obj.id, path, data, owner[0], owner[1], mode)


class TaskFiles:
    """The files of this node's tasks, on a tmpfs at `root` (mounted on first use, once:
    tasks starting together write from several threads)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._mounting = threading.Lock()

    def _ensure_tmpfs(self) -> None:
        with self._mounting:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _is_mountpoint(self.root):
                _mount_tmpfs(self.root)

    def write(self, task_id: str, files: list[TaskFile]) -> list[dict[str, Any]]:
        """Write the task's files; the container's mounts of them."""
        if not files:
            return []
        self._ensure_tmpfs()
        task_dir = self.root / task_id
        task_dir.mkdir(mode=0o700, exist_ok=True)
        mounts = []
        for n, f in enumerate(files):
            path = task_dir / f"{n}-{f.id}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, f.data)
                os.fchown(fd, f.uid, f.gid)
                os.fchmod(fd, f.mode)
            finally:
                os.close(fd)
            mounts.append({"Type": "bind", "Source": str(path), "Target": f.path, "ReadOnly": True})
        return mounts

    def remove(self, task_id: str) -> None:
        shutil.rmtree(self.root / task_id, ignore_errors=True)

    def clear(self) -> None:
        """Remove every file and the tmpfs (the node leaves the swarm)."""
        self.keep(set())
        if self.root.is_dir() and _is_mountpoint(self.root):
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            if libc.umount2(str(self.root).encode(), _MNT_DETACH) != 0:
                log.warning("unmounting %s: %s", self.root, os.strerror(ctypes.get_errno()))

    def keep(self, task_ids: set[str]) -> None:
        """Remove the files of every task not in `task_ids` (after a restart, what is left of
        tasks that went meanwhile)."""
        if not self.root.is_dir():
            return
        for entry in self.root.iterdir():
            if entry.name not in task_ids:
                shutil.rmtree(entry, ignore_errors=True)


def _mount_tmpfs(root: Path) -> None:
    """As dockerd mounts its own (no size or mode: /proc/mounts in the container shows the
    same options), then closed to all but root."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    flags = _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
    if libc.mount(b"tmpfs", str(root).encode(), b"tmpfs", flags, None) != 0:
        err = ctypes.get_errno()
        raise TaskRejected(f"secrets and configs need a tmpfs at {root}: mount: {os.strerror(err)}")
    root.chmod(0o700)


def _is_mountpoint(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)
