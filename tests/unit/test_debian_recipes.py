"""The pure parts of the lab's Debian-built images: recipes → image config, cache keys, the
build scripts, the ``docker load`` archive."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from shoal.lab.debian import archive, build, recipes
from shoal.lab.debian.recipes import RECIPES, file_text, image_digest, rootfs_key, select


def test_names_and_tags_are_the_documented_ones() -> None:
    assert [r.ref() for r in RECIPES.values()] == [
        "shoal-lab/debian:bookworm",
        "shoal-lab/nginx:1.22",
        "shoal-lab/postgres:15",
        "shoal-lab/mariadb:10.11",
        "shoal-lab/wordpress:6.1",
        "shoal-lab/items-api:1",
    ]
    assert recipes.NGINX.ref("10.211.1.2:5000/shoal-lab") == "10.211.1.2:5000/shoal-lab/nginx:1.22"


def test_select() -> None:
    assert select(None) == list(RECIPES.values())
    assert select(["nginx:1.22", "shoal-lab/postgres", "nginx"]) == [
        recipes.NGINX,
        recipes.POSTGRES,
    ]
    with pytest.raises(KeyError, match="no image 'redis'"):
        select(["redis"])


def test_keys_are_stable_and_follow_the_recipe() -> None:
    pg = recipes.POSTGRES
    assert rootfs_key(pg) == rootfs_key(dataclasses.replace(pg))
    assert len({rootfs_key(r) for r in RECIPES.values()}) == len(RECIPES)
    more = dataclasses.replace(pg, packages=(*pg.packages, "postgresql-contrib"))
    assert rootfs_key(more) != rootfs_key(pg)
    setup = dataclasses.replace(pg, setup=pg.setup + "true\n")
    assert rootfs_key(setup) != rootfs_key(pg)
    # The image config is not in the rootfs: a new Env loads the same tarball again.
    env = dataclasses.replace(pg, env=(*pg.env, ("LANG", "C.UTF-8")))
    assert rootfs_key(env) == rootfs_key(pg)
    assert image_digest(env) != image_digest(pg)
    # The packages' order does not matter.
    w = recipes.WORDPRESS
    assert rootfs_key(dataclasses.replace(w, packages=w.packages[::-1])) == rootfs_key(w)


def test_postgres_config_is_the_official_images() -> None:
    config = archive.container_config(recipes.POSTGRES)
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["postgres"]
    assert config["StopSignal"] == "SIGINT"
    assert config["ExposedPorts"] == {"5432/tcp": {}}
    assert config["Volumes"] == {"/var/lib/postgresql/data": {}}
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["PGDATA"] == "/var/lib/postgresql/data"
    assert env["PATH"].startswith("/usr/lib/postgresql/15/bin:")
    assert config["Labels"][recipes.DIGEST_LABEL] == image_digest(recipes.POSTGRES)
    assert "User" not in config  # the entrypoint drops to postgres itself


def test_other_configs() -> None:
    nginx = archive.container_config(recipes.NGINX)
    assert nginx["Cmd"] == ["nginx", "-g", "daemon off;"]
    assert nginx["StopSignal"] == "SIGQUIT" and nginx["ExposedPorts"] == {"80/tcp": {}}
    api = archive.container_config(recipes.ITEMS_API)
    assert (api["User"], api["WorkingDir"]) == ("app", "/app")
    assert api["ExposedPorts"] == {"8000/tcp": {}}
    assert archive.container_config(recipes.MARIADB)["Volumes"] == {"/var/lib/mysql": {}}
    wp = archive.container_config(recipes.WORDPRESS)
    assert wp["Cmd"] == ["apache2", "-DFOREGROUND"] and wp["ExposedPorts"] == {"80/tcp": {}}


@pytest.mark.parametrize(
    "name", ["postgres-entrypoint.sh", "mariadb-entrypoint.sh", "wordpress-entrypoint.sh"]
)
def test_entry_scripts_are_strict_posix_shell(name: str) -> None:
    text = file_text(name)
    assert text.startswith("#!/bin/sh\n") and "\nset -e\n" in text
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh
    proc = subprocess.run([sh, "-n"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_recipe_file_is_shipped_and_the_app_compiles() -> None:
    for recipe in RECIPES.values():
        for f in recipe.files:
            assert f.text and f.path.startswith("/")
    compile(file_text("items_api.py"), "items_api.py", "exec")


def test_build_scripts() -> None:
    install = recipes.install_script(recipes.WORDPRESS)
    assert (
        "apt-get install -y -q --no-install-recommends apache2 libapache2-mod-php php-mysql "
        "wordpress wordpress-theme-twentytwentythree\n"
    ) in install
    assert recipes.install_script(recipes.DEBIAN).count("apt-get install") == 0
    setup = recipes.setup_script(recipes.NGINX)
    assert setup.startswith("set -e\n") and "ln -sf /dev/stdout /var/log/nginx/access.log" in setup
    assert "/usr/sbin/policy-rc.d" in setup
    assert "apt-get clean" not in setup  # the .debs are a cache shared by the builds


def test_cache_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_IMAGE_CACHE", str(tmp_path))
    path = build.tarball_path(recipes.NGINX)
    assert path == tmp_path / f"nginx-1.22-{rootfs_key(recipes.NGINX)}.tar"
    assert build.cached(recipes.NGINX) is None
    path.write_bytes(b"x" * 10)
    hit = build.cached(recipes.NGINX)
    assert hit is not None and hit.cached and hit.size == 10
    assert build.base_path().name.startswith("base-bookworm-")


def test_load_archive_is_a_docker_save_tarball(tmp_path: Path) -> None:
    layer = tmp_path / "rootfs.tar"
    with tarfile.open(layer, "w") as t:
        data = b"hello\n"
        ti = tarfile.TarInfo("etc/greeting")
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    diff_id = archive.file_sha256(layer)
    assert diff_id == "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()
    tags = ["shoal-lab/nginx:1.22"]
    arc = archive.LoadArchive(recipes.NGINX, tags, layer, diff_id, "2024-01-01T00:00:00Z")
    blob = b"".join(arc)
    assert len(blob) == len(arc) and len(blob) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(blob)) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        [entry] = manifest
        assert entry["RepoTags"] == tags
        raw = t.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == arc.image_id
        assert entry["Config"] == arc.image_id.split(":")[1] + ".json"
        config = json.loads(raw)
        assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
        assert config["config"]["StopSignal"] == "SIGQUIT" and config["os"] == "linux"
        assert t.extractfile(entry["Layers"][0]).read() == layer.read_bytes()  # type: ignore[union-attr]
    # Same recipe, same tarball: same image ID.
    again = archive.LoadArchive(recipes.NGINX, ["x/y:1"], layer, diff_id, "2024-01-01T00:00:00Z")
    assert again.image_id == arc.image_id
