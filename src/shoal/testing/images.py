"""Test images built without any registry, from Debian's ``busybox-static``.

* ``shoal-test/busybox:1`` — ``/bin/busybox`` plus a symlink per applet; ``CMD ["sh"]``.
* ``shoal-test/whoami:1`` and ``:2`` — the same plus ``/serve``, an HTTP server answering
  with its hostname and version (``/``, ``/hostname``, ``/version``, ``/cgi-bin/whoami``).

They are built by ``shoal.lab.images`` (see there for their content), which the lab uses for
its registry's ``shoal-lab/*`` images too. Each carries a ``shoal.test.digest`` label, so
``ensure_test_images`` skips an image that is already there with the same content
(idempotent, ~0.2 s per import otherwise). ``image_tars()`` gives the tarballs and changes
for other uses.
"""

from __future__ import annotations

from shoal.lab.images import (
    DIGEST_LABEL,
    Images,
    busybox_binary,
    ensure_images,
    image_id,
    image_set,
    import_image,
)

BUSYBOX = "shoal-test/busybox:1"
WHOAMI_1 = "shoal-test/whoami:1"
WHOAMI_2 = "shoal-test/whoami:2"
ALL = (BUSYBOX, WHOAMI_1, WHOAMI_2)

__all__ = [
    "ALL",
    "BUSYBOX",
    "DIGEST_LABEL",
    "WHOAMI_1",
    "WHOAMI_2",
    "busybox_binary",
    "ensure_test_images",
    "image_id",
    "image_tars",
    "import_image",
]


def image_tars() -> Images:
    """ref → (rootfs tarball, Dockerfile-style changes) for every test image (cached:
    do not mutate)."""
    return image_set("shoal-test")


def ensure_test_images(host: str, refs: tuple[str, ...] = ALL) -> dict[str, str]:
    """Make sure the test images exist in the engine at host; returns ref → image ID."""
    return ensure_images(host, image_tars(), refs, message="shoal test image")
