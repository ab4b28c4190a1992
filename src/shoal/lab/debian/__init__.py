"""The lab's real images, built from Debian bookworm packages: ``recipes`` (data), ``build``
(rootfs tarballs into a cache), ``publish`` (into an engine, on to a lab registry)."""
