"""The real-engine test infrastructure itself: isolated dockerd, test images, teardown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from shoal.lab import procs
from shoal.testing.dockerd import (
    IsolatedEngine,
    cleanup_stale,
    engine_processes,
)
from shoal.testing.images import BUSYBOX, WHOAMI_1, WHOAMI_2, ensure_test_images

pytestmark = pytest.mark.e2e


def _wait_http(engine: IsolatedEngine, port: int, path: str = "/", timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, body = engine.http_get(port, path)
            if status == 200:
                return body
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answers on :{port}{path} in {engine.name}")
        time.sleep(0.1)


def _free_root_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_docker_run_echo(engine, docker_cli):
    rc, out, err = docker_cli(engine.host, "run", "--rm", BUSYBOX, "echo", "hi")
    assert (rc, out) == (0, "hi\n"), err


def test_engine_is_its_own_host(engine, docker_cli):
    rc, out, err = docker_cli(engine.host, "info", "--format", "{{json .}}")
    assert rc == 0, err
    info = json.loads(out)
    assert info["Name"] == "shoal-test-engine"
    assert info["DockerRootDir"] == engine.data_root
    assert engine.run_in_ns(["hostname"]).stdout.strip() == "shoal-test-engine"
    # /sys was remounted: /sys/class/net lists this namespace's interfaces, not the host's.
    sys_net = set(engine.run_in_ns(["ls", "/sys/class/net"]).stdout.split())
    ip_links = engine.run_in_ns(["ip", "-o", "link"]).stdout.splitlines()
    assert sys_net == {line.split(":")[1].strip().split("@")[0] for line in ip_links}
    assert {"lo", "docker0"} <= sys_net
    assert procs.ns_id(engine.holder_pid, "net") != procs.ns_id(os.getpid(), "net")
    # The engine's key.json (engine ID) is its own.
    assert Path(engine.dir, "ns/etc-docker/key.json").exists()


def test_images_are_idempotent_and_distinct(engine):
    start = time.monotonic()
    ids = ensure_test_images(engine.host)
    assert time.monotonic() - start < 2.0
    assert len(set(ids.values())) == 3
    assert ids == ensure_test_images(engine.host)


def test_whoami_answers_on_published_port(engine, docker_cli):
    port = _free_root_port()
    rc, cid, err = docker_cli(engine.host, "run", "-d", "-p", f"{port}:80", WHOAMI_1)
    assert rc == 0, err
    cid = cid.strip()
    try:
        # Python socket created in the engine's netns.
        body = _wait_http(engine, port)
        assert body == f"Hostname: {cid[:12]}\nVersion: 1\n"
        assert engine.http_get(port, "/hostname") == (200, f"{cid[:12]}\n")
        status, cgi = engine.http_get(port, "/cgi-bin/whoami")
        assert status == 200 and f"Hostname: {cid[:12]}" in cgi and "IP: 172.17." in cgi
        # busybox wget run inside the engine's namespaces, via the bridge address too.
        for addr in ("127.0.0.1", "172.17.0.1"):
            r = engine.run_in_ns(["busybox", "wget", "-qO-", f"http://{addr}:{port}/version"])
            assert (r.returncode, r.stdout) == (0, "1\n"), r.stderr
        # The port is published in the engine's namespace only, not in the caller's.
        with socket.socket() as s, pytest.raises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))
        # SIGTERM stops whoami at once (no 10 s stop timeout).
        start = time.monotonic()
        rc, _, err = docker_cli(engine.host, "stop", cid)
        assert rc == 0, err
        assert time.monotonic() - start < 5
    finally:
        docker_cli(engine.host, "rm", "-f", cid)


def test_two_engines_at_once(engine, docker_cli):
    """Two more engines start, serve the same port with different content and stop
    concurrently, next to the session engine."""

    def up(version: str) -> IsolatedEngine:
        eng = IsolatedEngine().start()
        ensure_test_images(eng.host)
        image = WHOAMI_1 if version == "1" else WHOAMI_2
        rc, _, err = docker_cli(eng.host, "run", "-d", "-p", "8080:80", image)
        assert rc == 0, err
        return eng

    with ThreadPoolExecutor(2) as pool:
        engines = list(pool.map(up, ["1", "2"]))
    try:
        a, b = engines
        assert a.socket_path != b.socket_path
        assert len({procs.ns_id(e.holder_pid, "net") for e in (a, b, engine)}) == 3
        assert _wait_http(a, 8080, "/version") == "1\n"
        assert _wait_http(b, 8080, "/version") == "2\n"
        for eng in engines:
            rc, out, err = docker_cli(eng.host, "run", "--rm", BUSYBOX, "echo", eng.name)
            assert (rc, out) == (0, f"{eng.name}\n"), err
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(IsolatedEngine.stop, engines))
    for eng in engines:
        assert not os.path.exists(eng.dir)
        assert not list(engine_processes(eng.dir))
    rc, out, err = docker_cli(engine.host, "run", "--rm", BUSYBOX, "echo", "still here")
    assert (rc, out) == (0, "still here\n"), err


def test_stop_kills_everything(docker_cli):
    eng = IsolatedEngine().start()
    ensure_test_images(eng.host, (BUSYBOX, WHOAMI_1))
    for args in (
        ["--restart=always", BUSYBOX, "sleep", "1000"],  # ignores SIGTERM, restarts
        ["-p", "80:80", WHOAMI_1],  # docker-proxy, iptables rules
        ["--network=host", BUSYBOX, "sleep", "1000"],  # in the engine's own netns
    ):
        rc, _, err = docker_cli(eng.host, "run", "-d", *args)
        assert rc == 0, err
    started = eng.popen_in_ns(["sleep", "1000"])  # e.g. a shoald under test
    container_pids = eng.container_pids()
    assert len(container_pids) == 3
    netns, cgroups = procs.ns_id(eng.holder_pid, "net"), list(eng.cgroup_dirs)
    assert any(os.path.isdir(c) for c in cgroups)

    start = time.monotonic()
    eng.stop()
    elapsed = time.monotonic() - start
    assert elapsed < 15, f"stop took {elapsed:.1f}s"
    eng.stop()  # idempotent

    assert started.wait(timeout=5) < 0  # killed by a signal, not left running
    assert not any(procs.alive(p) for p in container_pids)
    assert not [p for p in procs.pids() if procs.ns_id(p, "net") == netns]
    assert not [c for c in cgroups if os.path.exists(c)]
    assert not os.path.exists(eng.dir)
    assert not list(engine_processes(eng.dir))
    with open("/proc/self/mountinfo") as f:
        assert eng.dir not in f.read()


def test_cleanup_stale_engine_of_dead_owner():
    eng = IsolatedEngine().start()
    dead = subprocess.Popen(["true"])
    dead.wait()
    state_file = Path(eng.dir, "state.json")
    state = json.loads(state_file.read_text())
    state["owner_pid"] = dead.pid  # as if the test run that started it had been killed
    state_file.write_text(json.dumps(state))
    assert eng.dir in cleanup_stale(os.path.dirname(eng.dir))
    assert not os.path.exists(eng.dir)
    assert not list(engine_processes(eng.dir))
    eng.stop()  # still fine afterwards
