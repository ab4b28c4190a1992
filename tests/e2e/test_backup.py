"""`shoal swarm backup` on a running manager, the lab taken down, `shoal swarm restore` on a
new host outside any swarm: the services, networks and secrets are back (a secret still
opens: a new task reads it), and the backup file shows neither the secret nor the data key."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import lab_cli, wait_for
from swarmlab import Lab

pytestmark = pytest.mark.e2e

SECRET = "backup-plaintext-" + secrets.token_hex(8)
ROOT = Path(__file__).resolve().parents[2]


def shoal(host: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DOCKER_HOST=host, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "shoal.cli.main", *args], env=env,
                          input=input, capture_output=True, text=True, timeout=120)  # fmt: skip


def up(name: str, *args: str) -> None:
    proc = lab_cli("up", "--name", name, *args)
    assert proc.returncode == 0, f"up failed:\n{proc.stdout}\n{proc.stderr}"


def test_backup_then_restore_on_a_new_host(
    docker_cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    first, second = "bk" + secrets.token_hex(3), "rs" + secrets.token_hex(3)
    file = tmp_path / "swarm.backup"
    try:
        up(first, "--managers", "1", "--workers", "1")
        lab = Lab(first, docker_cli, ("m1", "w1"))
        cli = lab.cli["m1"]
        cli.ok("secret", "create", "s1", "-", input=SECRET)
        cli.ok("network", "create", "-d", "overlay", "backnet")
        cli.create("web", "--replicas", "2", "--network", "backnet", "--secret", "s1",
                   lab.busybox, "sleep", "3600")  # fmt: skip
        node_id = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))["NodeID"]
        swarm_id = cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip()
        data_key = Path(f"/var/lib/shoal-lab/{first}/{lab.node('m1')}/shoald/swarm/data.key")
        raw_key = data_key.read_bytes()

        made = shoal(cli.host, "swarm", "backup", str(file))
        assert made.returncode == 0, made.stderr
        key = next(w for w in made.stdout.split() if w.startswith("SWMKEY-1-"))
        blob = file.read_bytes()
        for text in (SECRET.encode(), raw_key, base64.b64encode(raw_key), raw_key.hex().encode(),
                     key.encode()):  # fmt: skip
            assert text not in blob
        assert lab_cli("down", "--name", first).returncode == 0

        up(second, "--managers", "1", "--workers", "0", "--no-swarm")
        new = Lab(second, docker_cli, ("m1",))
        cli = new.cli["m1"]
        wrong = shoal(cli.host, "swarm", "restore", str(file), "--key", "SWMKEY-1-" + "A" * 43)
        assert wrong.returncode == 1 and "invalid key provided" in wrong.stderr, wrong.stderr
        done = shoal(cli.host, "swarm", "restore", str(file), input=key + "\n")
        assert done.returncode == 0, done.stderr
        assert f"({node_id})" in done.stdout
        assert cli.ok("info", "--format", "{{.Swarm.Cluster.ID}}").strip() == swarm_id
        assert cli.service_row("web")["Name"] == "web"
        assert "backnet" in cli.ok("network", "ls", "--format", "{{.Name}}").split()
        info = json.loads(cli.ok("info", "--format", "{{json .Swarm}}"))
        assert info["NodeID"] == node_id and info["Managers"] == 1, info
        # the secret still opens: a new task on this node reads it
        cli.create("reader", "--constraint", f"node.id=={node_id}", "--secret", "s1",
                   new.busybox, "sleep", "3600")  # fmt: skip

        def reader() -> str | None:
            ids = cli.ok("ps", "-q", "--filter", "label=com.docker.swarm.service.name=reader")
            return ids.split()[0] if ids.split() else None

        cid = wait_for(reader, 60, what="the reader task running")
        assert cli.ok("exec", cid, "cat", "/run/secrets/s1") == SECRET
        # writes work
        cli.ok("secret", "create", "s2", "-", input="x")
    finally:
        lab_cli("down", "--name", first)
        lab_cli("down", "--name", second)
