"""The daemon of one host: its swarm membership and everything that runs for it."""
