"""shoal's test kit, for anyone writing tests against shoal's parts.

* `MemoryKV` (`kv.py`): the store's key-value backend in memory, with etcd's semantics and
  fault injection; `MemoryStore` (`store.py`): the real store over it.
* `MockClock` (`clock.py`): the loops' clock on the event loop's (virtual, under looptime) time.
* `FakeEngine`, `FakeController` (`fakes.py`): a node's engine and its tasks' containers.
* `SimCluster` (`cluster.py`): a whole swarm in one process on the above.
* `IsolatedEngine` (`dockerd.py`), `Shoald` (`shoald.py`), the test images (`images.py`): real
  dockerd and shoald processes for end-to-end tests.
* `History`, `check` (`history.py`): calls of concurrent clients on services and a checker
  of what they may show (no lost acknowledged update, one update per version, reads that never
  go back); `Recorder` (`recorder.py`) makes and records such calls through the Docker API.
"""

from shoal.testing.clock import MockClock
from shoal.testing.cluster import SimCluster
from shoal.testing.fakes import FakeController, FakeEngine
from shoal.testing.kv import MemoryKV
from shoal.testing.store import MemoryStore

__all__ = ["FakeController", "FakeEngine", "MemoryKV", "MemoryStore", "MockClock", "SimCluster"]
