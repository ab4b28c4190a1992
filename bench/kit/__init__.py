"""What shoal's benchmarks (``bench/*.py``) share, one module per concern:

* ``docker``  — the stock docker CLI and the Engine API calls; the benchmark's service
  (``web``), its tasks and its containers;
* ``procs``   — ``/proc`` readers: pids, memory, CPU seconds, idle CPU;
* ``lab``     — ``BenchLab``: a ``shoal lab`` running shoal's swarm, Docker's or none;
* ``engine``  — one isolated engine, and a shoald in front of it (single-engine runs);
* ``logs``    — what shoald, etcd and dockerd logged, grouped and counted;
* ``poll``    — pollers: counts over time, first times, task-state traces, waits;
* ``report``  — formatting, medians over rounds, ratios, the printed tables;
* ``runs``    — signals and teardown, the interleaved rounds, the machine, the JSON.

Importing the package puts this repository's ``src`` first on ``sys.path``, so that the
benchmark runs the shoal it sits in (its labs' daemons get the same ``PYTHONPATH``).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"

if sys.path[:1] != [str(SRC)]:
    sys.path.insert(0, str(SRC))
