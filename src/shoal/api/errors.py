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


class NameTaken(Conflict):
    """Another object of the kind holds the name (the control API says it in its words)."""


class NotAcceptable(ShoalError):
    """Swarm-state errors (`This node is not a swarm manager…`): Docker answers 503."""

    status = 503


class Unavailable(ShoalError):
    status = 503


class Forbidden(ShoalError):
    status = 403


class Unauthorized(ShoalError):
    """moby `errdefs.Unauthorized` (a wrong unlock key): HTTP 401."""

    status = 401


class Deposed(ShoalError):
    """A write of a leader's loop after the leadership passed on (its fence failed)."""

    status = 503


class TaskRejected(Exception):
    """A task can never run on this node (bad image, invalid configuration)."""


class TaskFailed(Exception):
    """A task's container could not be started."""


class ConstraintError(ValueError):
    """A constraint expression swarmkit's parser rejects; str() is swarmkit's message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SealError(Exception):
    """A sealed value that does not open with this swarm's data key."""


class EngineError(ShoalError):
    """An error answer of the node's own engine, with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- the swarm control API's
# errors: `rpc error: code = <code> desc = <message>` (swarmkit's gRPC codes, as Docker shows
# them), and the daemon's own (bare text)


class _RPCText:
    code = "Unknown"
    message: str

    def __str__(self) -> str:
        return rpc(self.code, self.message)


class InvalidArgument(_RPCText, BadRequest):
    """swarmkit `codes.InvalidArgument`: HTTP 400, `rpc error: code = InvalidArgument desc = …`."""

    code = "InvalidArgument"


class RPCUnknown(_RPCText, ShoalError):
    """A plain Go error out of swarmkit (constraint parsing): HTTP 500, code = Unknown."""

    code = "Unknown"


class Unimplemented(_RPCText, ShoalError):
    """swarmkit `codes.Unimplemented` (rename, mode change): HTTP 501."""

    status = 501
    code = "Unimplemented"


class InvalidParameter(InvalidArgument):
    """moby `errdefs.InvalidParameter` raised by the daemon itself: HTTP 400, bare text.

    A subclass of InvalidArgument so that `except InvalidArgument` catches every 400 this
    module raises; str() is the bare text, as Docker shows it."""

    def __str__(self) -> str:
        return self.message


class DaemonError(ShoalError):
    """A plain error from the daemon (no errdefs class): HTTP 500, bare text."""


class FailedPrecondition(_RPCText, BadRequest):
    """swarmkit `codes.FailedPrecondition`: HTTP 400."""

    code = "FailedPrecondition"


class PermissionDenied(_RPCText, Forbidden):
    """swarmkit `codes.PermissionDenied`: HTTP 403."""

    code = "PermissionDenied"


class AlreadyExists(_RPCText, Conflict):
    """swarmkit `codes.AlreadyExists`: HTTP 409."""

    code = "AlreadyExists"


class OutOfSequence(_RPCText, Conflict):
    """An update against a stale version: HTTP 409, code = Unknown (as Docker answers)."""

    code = "Unknown"

    def __init__(self, message: str = "update out of sequence") -> None:
        super().__init__(message)


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


class NoLeader(_RPCText, ShoalError):
    """The cluster store cannot answer (no quorum): Docker's quorum-loss answer, HTTP 500
    (as Docker's own swarm mode answers it)."""

    code = "Unknown"

    def __init__(self) -> None:
        super().__init__(NO_LEADER)


REMOVED_MANAGER = (
    "This manager was removed from the swarm's cluster store while it was away (a `docker "
    "swarm init --force-new-cluster` on another manager?): it no longer serves the swarm. "
    "Run `docker swarm leave --force` on it, then join it again with a manager token."
)


class RemovedManager(NoLeader):
    """A manager whose etcd member the cluster removed (Docker's `raft: member was removed
    from the cluster`): it does not serve, in every call and in `docker info`'s Error."""

    def __init__(self) -> None:
        ShoalError.__init__(self, REMOVED_MANAGER)


SWARM_LOCKED = (
    'Swarm is encrypted and needs to be unlocked before it can be used. Please use "docker '
    'swarm unlock" to unlock it.'
)
LOCKED_LEAVE = (
    "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message."
)
NOT_LOCKED = "swarm is not locked"
INVALID_KEY_STRING = "invalid key string"
INVALID_UNLOCK_KEY = "swarm could not be unlocked: invalid key provided"


class SwarmLocked(NotAcceptable):
    """A manager restarted with autolock on, not unlocked yet: every swarm call but unlock
    answers this (moby `errSwarmLocked`, HTTP 503)."""

    def __init__(self) -> None:
        super().__init__(SWARM_LOCKED)


INVALID_JOIN_TOKEN = "A valid join token is necessary to join this cluster"


def rpc(code: str, message: str) -> str:
    """The text Docker shows for an error that came back from the swarm control API."""
    return f"rpc error: code = {code} desc = {message}"
