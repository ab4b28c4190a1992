#!/usr/bin/env bash
# Set up this machine (scripts/setup.sh) and start shoal: the node's Docker Engine if none is
# running, then shoald serving the Docker API on /run/shoal/docker.sock. Idempotent.
#
#   scripts/start.sh            # then: export DOCKER_HOST=unix:///run/shoal/docker.sock
#   scripts/start.sh --stop     # stop shoald (and the dockerd this script started)
#
# Environment: SHOAL_STATE_DIR (default /var/lib/shoal), SHOAL_SOCKET (default
# /run/shoal/docker.sock), SHOAL_ENGINE (default unix:///var/run/docker.sock), SHOAL_VENV.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${SHOAL_VENV:-$repo/.venv}
state=${SHOAL_STATE_DIR:-/var/lib/shoal}
sock=${SHOAL_SOCKET:-/run/shoal/docker.sock}
engine=${SHOAL_ENGINE:-unix:///var/run/docker.sock}
run=/run/shoal
say() { printf 'shoal: %s\n' "$*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
ping() { curl -sf --max-time 2 --unix-socket "$1" http://docker/_ping >/dev/null 2>&1; }

mkdir -p "$run" "$state"

if [ "${1:-}" = "--stop" ]; then
  for name in shoald dockerd; do
    if alive "$run/$name.pid"; then
      say "stopping $name (pid $(cat "$run/$name.pid"))"
      kill "$(cat "$run/$name.pid")"
      for _ in $(seq 50); do alive "$run/$name.pid" || break; sleep 0.2; done
    fi
    rm -f "$run/$name.pid"
  done
  exit 0
fi

bash "$repo/scripts/setup.sh"

engine_sock=${engine#unix://}
if [ "$engine" = "unix:///var/run/docker.sock" ] && ! ping "$engine_sock"; then
  say "no Docker Engine answers on $engine_sock: starting Debian's dockerd (log: /var/log/shoal-dockerd.log)"
  nohup dockerd >/var/log/shoal-dockerd.log 2>&1 &
  echo $! >"$run/dockerd.pid"
  for _ in $(seq 100); do ping "$engine_sock" && break; sleep 0.2; done
  ping "$engine_sock" || { say "dockerd did not start; see /var/log/shoal-dockerd.log" >&2; exit 1; }
  # dockerd sets the FORWARD policy to DROP; keep other hosts' traffic flowing.
  iptables -C DOCKER-USER -j ACCEPT 2>/dev/null || iptables -I DOCKER-USER -j ACCEPT 2>/dev/null || true
fi

if alive "$run/shoald.pid" && ping "$sock"; then
  say "shoald is already running (pid $(cat "$run/shoald.pid"))"
else
  say "starting shoald (state: $state, log: /var/log/shoald.log)"
  nohup "$venv/bin/shoald" --state-dir "$state" --host "unix://$sock" --engine "$engine" \
    >>/var/log/shoald.log 2>&1 &
  echo $! >"$run/shoald.pid"
  for _ in $(seq 100); do ping "$sock" && break; sleep 0.1; done
  ping "$sock" || { say "shoald did not start; see /var/log/shoald.log" >&2; exit 1; }
fi

cat <<MSG
shoal: ready. Point the docker CLI at it:

    export DOCKER_HOST=unix://$sock
    # or: docker context create shoal --docker host=unix://$sock && docker context use shoal

    docker swarm init --advertise-addr 127.0.0.1
MSG
