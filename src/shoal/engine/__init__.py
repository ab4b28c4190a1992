"""The client of the node's own Docker Engine API."""
