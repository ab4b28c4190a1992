"""`MockClock`: epoch seconds that follow the running event loop's time.

Every shoal loop takes its clock (`Callable[[], float]`, POSIX seconds) and sleeps with
asyncio. Run a test under looptime (`@pytest.mark.looptime`: the loop's time is virtual and
jumps to the next timer when nothing else can run) and pass a `MockClock`: the loops' clock
and their sleeps then agree, a 30-second restart delay costs no real time, and the same test
gives the same result however loaded the machine is.
"""

from __future__ import annotations

import asyncio

EPOCH = 1_700_000_000.0


class MockClock:
    def __init__(self, start: float = EPOCH) -> None:
        self.start = start

    def __call__(self) -> float:
        return self.start + asyncio.get_running_loop().time()
