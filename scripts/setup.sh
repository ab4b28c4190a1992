#!/usr/bin/env bash
# Set up a Debian (12+) machine to run shoal and its tests. Idempotent: run it any time.
#
#   * Debian packages: docker.io (dockerd, containerd, runc, docker CLI), etcd-server, etcd-client,
#     busybox-static (test images), docker-registry (the `shoal lab` registry), apache2-utils
#     (htpasswd: the password of the lab registry behind a login), iproute2, iptables,
#     nftables, curl, util-linux (unshare/nsenter), tini, python3-venv, criu (for
#     `docker checkpoint` on engines started with --experimental), iperf3, wrk and haproxy
#     (bench/overlay.py, bench/mesh.py), mmdebstrap, debian-archive-keyring and gpg (the lab's
#     real images, `shoal lab images build`: a bookworm rootfs from Debian's mirrors).
#     `apt-get update` only when something is missing.
#     Services are NOT started by the install (a policy-rc.d is in place meanwhile): tests
#     start their own dockerd/etcd in their own namespaces.
#   * A virtualenv ($SHOAL_VENV, default <repo>/.venv) with `pip install -e '.[test]'`,
#     redone only when pyproject.toml, the repo path or the Python changed.
#
# Environment: SHOAL_VENV (venv path), SHOAL_PYTHON (interpreter for the venv, default
# Debian's /usr/bin/python3), SHOAL_SKIP_APT=1 (skip the package step).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SHOAL_VENV:-$repo/.venv}
say() { printf 'setup: %s\n' "$*"; }

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo=(sudo -n); else
    say "not root and no sudo: cannot install packages" >&2; exit 1
  fi
fi

# ---------------------------------------------------------------- Debian packages
packages=(docker.io etcd-server etcd-client busybox-static docker-registry apache2-utils iproute2 iptables
          nftables curl util-linux tini ca-certificates python3 python3-venv criu iperf3 wrk haproxy
          mmdebstrap debian-archive-keyring gpg)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

if [ "${SHOAL_SKIP_APT:-0}" = 1 ]; then
  say "SHOAL_SKIP_APT=1: not checking Debian packages"
else
  missing=()
  for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages already installed: ${packages[*]}"
  else
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt=("${sudo[@]}" apt-get -y -q -o DPkg::Lock::Timeout=300
         -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
    # Keep package scripts from starting dockerd/etcd in the root namespace.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
      "${sudo[@]}" chmod 755 "$policy"
      trap '"${sudo[@]}" rm -f "$policy"' EXIT
    fi
    say "apt-get update"
    "${apt[@]}" update
    "${apt[@]}" install --no-install-recommends "${missing[@]}"
  fi
fi

for tool in dockerd containerd runc etcd busybox docker-registry htpasswd unshare nsenter ip \
            iptables curl mmdebstrap; do
  command -v "$tool" >/dev/null 2>&1 || { say "missing after install: $tool" >&2; exit 1; }
done

# ---------------------------------------------------------------- Python virtualenv
python=${SHOAL_PYTHON:-}
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3); fi
fi
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "$python is older than Python 3.11" >&2; exit 1; }

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  say "virtualenv exists: $venv"
else
  say "creating virtualenv $venv with $python"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

stamp_file=$venv/.shoal-setup-stamp
stamp=$( { cat "$repo/pyproject.toml"; echo "$repo"; "$venv/bin/python" -VV; } | sha256sum | cut -d' ' -f1)
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] \
   && "$venv/bin/python" -c 'import shoal, pytest, docker' 2>/dev/null; then
  say "python packages up to date in $venv"
else
  say "pip install -e '.[test]' into $venv"
  export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  "$venv/bin/python" -m pip install -q -e "$repo[test]"
  echo "$stamp" > "$stamp_file"
fi

say "done. Run the tests with: scripts/test"
