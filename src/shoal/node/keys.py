"""A manager's copy of the swarm's data key (`swarm/data.key`): plain while autolock is
off, wrapped with the unlock key while it is on; and the key itself in memory once opened.

Every manager follows the swarm's unlock key (`Swarm.UnlockKey`, sealed in the store): when
it changes (autolock turned on or off, `unlock-key --rotate` on any manager) the file is
rewritten at once, so the old key no longer opens it. A manager that was down meanwhile
still opens with the key its file was wrapped with, then follows the current one.
"""

from __future__ import annotations

from pathlib import Path

from shoal.api.errors import INVALID_UNLOCK_KEY, SealError, SwarmLocked, Unauthorized
from shoal.store.seal import is_wrapped, load_key, unwrap, wrap, write_key


class LocalKeys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data_key: bytes | None = None  # once opened
        self._wrapped_with: str | None = None  # the unlock key of the file, None: plain

    def locked(self) -> bool:
        """Whether the file on disk needs the unlock key."""
        return is_wrapped(load_key(self.path))

    def open(self, unlock_key: str | None = None) -> bytes:
        """Read the data key, unwrapping it with `unlock_key` if it is wrapped: `SwarmLocked`
        without one, Docker's `invalid key provided` (401) with a wrong one."""
        stored = load_key(self.path)
        if not is_wrapped(stored):
            self.data_key, self._wrapped_with = stored, None
            return stored
        if unlock_key is None:
            raise SwarmLocked()
        try:
            key = unwrap(stored, unlock_key)
        except SealError:
            raise Unauthorized(INVALID_UNLOCK_KEY) from None
        self.data_key, self._wrapped_with = key, unlock_key
        return key

    def create(self, data_key: bytes, unlock_key: str | None) -> None:
        """A new swarm's data key (`swarm init`), wrapped from the start with autolock."""
        self.data_key, self._wrapped_with = data_key, None
        self._write(unlock_key)

    def follow(self, unlock_key: str | None) -> bool:
        """Keep the file wrapped with the swarm's current unlock key (None: plain). True when
        the file was rewritten."""
        if unlock_key == self._wrapped_with or self.data_key is None:
            return False
        self._write(unlock_key)
        return True

    def forget(self) -> None:
        self.data_key = self._wrapped_with = None

    def _write(self, unlock_key: str | None) -> None:
        assert self.data_key is not None
        write_key(self.path, wrap(self.data_key, unlock_key) if unlock_key else self.data_key)
        self._wrapped_with = unlock_key
