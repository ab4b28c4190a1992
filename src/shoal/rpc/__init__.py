"""Typed wire messages between managers and agents (`messages`)."""
