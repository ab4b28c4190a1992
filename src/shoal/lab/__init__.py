"""`shoal lab`: clusters of hosts on one machine (see docs/design/lab.md)."""
