"""The recipes of the lab's real images: data only, no I/O but reading the files shipped
beside this module (``files/``).

A ``Recipe`` says which Debian packages go on top of the shared minbase rootfs, which files
are written into it, a shell fragment run in the image's chroot after that (``setup``), and
the image config (``Env``, ``Entrypoint``, ``Cmd``, ``ExposedPorts``, ``Volumes``,
``StopSignal``, ``User``, ``WorkingDir``, ``Labels``: ``archive.container_config``) of the
image made of that rootfs.

Two keys come out of a recipe:

* ``rootfs_key`` — a hash of everything that goes into the rootfs tarball (the base's recipe,
  the packages, the files, the two scripts run in the chroot, ``BUILDER_VERSION``): the name
  of the cached tarball, so a tarball is built once per recipe and rebuilt when the recipe
  changes;
* ``image_digest`` — the rootfs key plus the image config: the ``shoal.lab.digest`` label of
  the imported image, so a second import into an engine that has it already is skipped, and
  a change of, say, ``Env`` loads the cached tarball again without rebuilding it.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

BUILDER_VERSION = "1"
SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
DIGEST_LABEL = "shoal.lab.digest"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# mmdebstrap options of the shared base: minbase, no recommends, no docs/man/locales (these
# dpkg path filters stay in the rootfs, so the packages of every image obey them too).
# Merged /usr is set up by mmdebstrap's hook (as debootstrap does), not by the usrmerge
# package, which would pull perl into every image.
BASE_OPTIONS = (
    "--variant=minbase",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    '--aptopt=APT::Install-Recommends "false"',
    '--aptopt=APT::Install-Suggests "false"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
)


@cache
def file_text(name: str) -> str:
    """A file shipped in ``shoal/lab/debian/files/``."""
    return resources.files("shoal.lab.debian").joinpath("files", name).read_text()


@dataclass(frozen=True)
class File:
    path: str  # absolute path in the image
    source: str  # name in files/
    mode: int = 0o644

    @property
    def text(self) -> str:
        return file_text(self.source)


@dataclass(frozen=True)
class Recipe:
    name: str  # repository under the prefix: shoal-lab/<name>
    tag: str
    summary: str
    packages: tuple[str, ...] = ()
    files: tuple[File, ...] = ()
    setup: str = ""  # sh -e, run in the chroot after the packages and files
    env: tuple[tuple[str, str], ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()  # "80/tcp"
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    user: str = ""
    workdir: str = ""
    labels: tuple[tuple[str, str], ...] = field(default=())

    def ref(self, prefix: str = "shoal-lab") -> str:
        return f"{prefix}/{self.name}:{self.tag}"

    @property
    def slug(self) -> str:
        return f"{self.name}-{self.tag}"


def install_script(recipe: Recipe) -> str:
    """The first chroot step of a build (``build.py``): the packages, and the updates of
    the base's."""
    lines = [
        "set -e",
        "export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8",
        "apt-get update -q",
        "apt-get dist-upgrade -y -q",
    ]
    if recipe.packages:
        packages = shlex.join(sorted(recipe.packages))
        lines.append(f"apt-get install -y -q --no-install-recommends {packages}")
    return "\n".join(lines) + "\n"


def setup_script(recipe: Recipe) -> str:
    """The second chroot step: the recipe's setup, then logs and leftovers removed (apt's
    lists and .debs are the shared caches mounted over the rootfs's: not in the image)."""
    return (
        "set -e\nexport DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8\n"
        + recipe.setup.strip()
        + "\nrm -rf /var/cache/debconf/*-old /var/lib/dpkg/*-old \\\n"
        "    /var/log/apt/* /var/log/dpkg.log /var/log/alternatives.log \\\n"
        "    /var/cache/ldconfig/aux-cache /usr/sbin/policy-rc.d /shoal-build.sh\n"
        "find /var/log -type f -name '*.log' -size +0 -delete\n"
    )


def base_key() -> str:
    return _hash({"v": BUILDER_VERSION, "suite": SUITE, "mirrors": MIRRORS, "opts": BASE_OPTIONS})


def rootfs_key(recipe: Recipe) -> str:
    """Hash of what goes into the recipe's rootfs tarball (see the module docstring)."""
    return _hash(
        {
            "base": base_key(),
            "packages": sorted(recipe.packages),
            "files": [(f.path, f.mode, f.text) for f in recipe.files],
            "install": install_script(recipe),
            "setup": setup_script(recipe),
        }
    )


def image_digest(recipe: Recipe) -> str:
    """The rootfs key plus the image config (see the module docstring)."""
    config = {
        "env": recipe.env,
        "entrypoint": recipe.entrypoint,
        "cmd": recipe.cmd,
        "ports": recipe.ports,
        "volumes": recipe.volumes,
        "stop_signal": recipe.stop_signal,
        "user": recipe.user,
        "workdir": recipe.workdir,
        "labels": recipe.labels,
    }
    return _hash({"rootfs": rootfs_key(recipe), "config": config})


def _hash(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------- recipes

_LABELS = (("org.opencontainers.image.source", "shoal lab (Debian bookworm packages)"),)

DEBIAN = Recipe(
    name="debian",
    tag=SUITE,
    summary="Debian bookworm minbase (the base of the others)",
    cmd=("bash",),
    labels=_LABELS,
)

NGINX = Recipe(
    name="nginx",
    tag="1.22",
    summary="Debian's nginx: the default page on :80, logs to stdout/stderr",
    packages=("nginx",),
    setup="""
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log
""",
    cmd=("nginx", "-g", "daemon off;"),
    ports=("80/tcp",),
    stop_signal="SIGQUIT",
    labels=_LABELS,
)

POSTGRES = Recipe(
    name="postgres",
    tag="15",
    summary="Debian's postgresql 15 with the official image's POSTGRES_* entrypoint",
    packages=("postgresql",),
    files=(File("/usr/local/bin/docker-entrypoint.sh", "postgres-entrypoint.sh", 0o755),),
    setup="""
pg_dropcluster 15 main  # the cluster the package made; the entrypoint makes $PGDATA's
mkdir -p /var/lib/postgresql/data /docker-entrypoint-initdb.d
chown postgres:postgres /var/lib/postgresql/data
chmod 700 /var/lib/postgresql/data
""",
    env=(
        ("PGDATA", "/var/lib/postgresql/data"),
        ("PATH", f"/usr/lib/postgresql/15/bin:{PATH}"),
    ),
    entrypoint=("docker-entrypoint.sh",),
    cmd=("postgres",),
    ports=("5432/tcp",),
    volumes=("/var/lib/postgresql/data",),
    stop_signal="SIGINT",
    labels=_LABELS,
)

MARIADB = Recipe(
    name="mariadb",
    tag="10.11",
    summary="Debian's mariadb-server with the official image's MYSQL_* entrypoint",
    packages=("mariadb-server",),
    files=(
        File("/usr/local/bin/docker-entrypoint.sh", "mariadb-entrypoint.sh", 0o755),
        File("/etc/mysql/mariadb.conf.d/90-shoal-lab.cnf", "mariadb-server.cnf"),
    ),
    setup="""
rm -rf /var/lib/mysql && mkdir -p /var/lib/mysql /run/mysqld /docker-entrypoint-initdb.d
chown mysql:mysql /var/lib/mysql /run/mysqld
""",
    entrypoint=("docker-entrypoint.sh",),
    cmd=("mariadbd",),
    ports=("3306/tcp",),
    volumes=("/var/lib/mysql",),
    labels=_LABELS,
)

WORDPRESS = Recipe(
    name="wordpress",
    tag="6.1",
    summary="Debian's wordpress on apache2 + mod_php, WORDPRESS_DB_* from the environment",
    packages=(
        "wordpress",
        "wordpress-theme-twentytwentythree",
        "apache2",
        "libapache2-mod-php",
        "php-mysql",
    ),
    files=(
        File("/usr/local/bin/docker-entrypoint.sh", "wordpress-entrypoint.sh", 0o755),
        File("/etc/wordpress/config-default.php", "wordpress-config.php"),
        File("/etc/apache2/sites-available/wordpress.conf", "wordpress-apache.conf"),
    ),
    setup="""
a2dissite 000-default
a2ensite wordpress
a2enmod rewrite
echo 'ServerName localhost' > /etc/apache2/conf-available/servername.conf
a2enconf servername
for log in access error other_vhosts_access; do
    ln -sf "/dev/std$([ $log = error ] && echo err || echo out)" "/var/log/apache2/$log.log"
done
chown -R www-data:www-data /var/lib/wordpress/wp-content
""",
    entrypoint=("docker-entrypoint.sh",),
    cmd=("apache2", "-DFOREGROUND"),
    ports=("80/tcp",),
    volumes=("/var/lib/wordpress/wp-content",),
    labels=_LABELS,
)

ITEMS_API = Recipe(
    name="items-api",
    tag="1",
    summary="a FastAPI app on :8000 keeping items in postgres; /docs works offline",
    packages=("python3-fastapi", "uvicorn", "python3-psycopg2"),
    files=(File("/app/main.py", "items_api.py"),),
    # Swagger UI's JS/CSS: from Debian's python3-flasgger, unpacked only (none of its deps).
    setup="""
cd /tmp
apt-get download python3-flasgger
dpkg-deb -x python3-flasgger_*.deb flasgger
mkdir -p /app/static
for f in swagger-ui-bundle.js swagger-ui.css favicon-32x32.png; do
    cp "flasgger/usr/lib/python3/dist-packages/flasgger/ui3/static/$f" /app/static/
done
rm -rf flasgger python3-flasgger_*.deb
useradd --system --home-dir /app --shell /usr/sbin/nologin app
python3 -m compileall -q /app
""",
    env=(("PYTHONUNBUFFERED", "1"),),
    cmd=("uvicorn", "--host", "0.0.0.0", "--port", "8000", "--app-dir", "/app", "main:app"),
    ports=("8000/tcp",),
    user="app",
    workdir="/app",
    labels=_LABELS,
)

RECIPES: dict[str, Recipe] = {
    r.name: r for r in (DEBIAN, NGINX, POSTGRES, MARIADB, WORDPRESS, ITEMS_API)
}


def select(names: list[str] | tuple[str, ...] | None) -> list[Recipe]:
    """The recipes named (``nginx`` or ``nginx:1.22``), all when none are; KeyError for an
    unknown name."""
    if not names:
        return list(RECIPES.values())
    out = []
    for n in names:
        name = n.split("/")[-1].split(":")[0]
        if name not in RECIPES:
            raise KeyError(f"no image {n!r} (known: {', '.join(RECIPES)})")
        if RECIPES[name] not in out:
            out.append(RECIPES[name])
    return out
