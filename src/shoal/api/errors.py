"""Errors that carry their Docker API status. The API layer turns them into
`{"message": …}` bodies with the status Docker uses."""

from __future__ import annotations


class ShoalError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(ShoalError):
    status = 400


class NotFound(ShoalError):
    status = 404


class Conflict(ShoalError):
    status = 409


class NotAcceptable(ShoalError):
    """Swarm-state errors (`This node is not a swarm manager…`): Docker answers 503."""

    status = 503


class Unavailable(ShoalError):
    status = 503


class Forbidden(ShoalError):
    status = 403


NOT_A_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" '
    "to connect this node to swarm and try again."
)
NOT_A_MANAGER_WORKER = (
    "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster "
    "state. Please run this command on a manager node or promote the current node to a manager."
)
ALREADY_IN_SWARM = (
    'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm '
    "and join another one."
)
NO_LEADER = (
    "The swarm does not have a leader. It's possible that too few managers are online. "
    "Make sure more than half of the managers are online."
)


def rpc(code: str, message: str) -> str:
    """The text Docker shows for an error that came back from the swarm control API."""
    return f"rpc error: code = {code} desc = {message}"
