"""Every error oneinfra raises on purpose, under one root, each a message a
person can act on:

    OneinfraError
    ├── DomainError        a command refused by the fleet's rules; nothing appended
    ├── ServiceError       the daemon could not take a command
    │   ├── ServiceClosed  it is shutting down
    │   ├── Conflict       the fleet kept changing under it; nothing appended
    │   └── StateFull      the state directory's disk is full; nothing appended
    ├── CRIError           a hypervisor's CRI endpoint (the message names it)
    │   ├── Unreachable    no answer: retried later, with backoff
    │   ├── NotFound       the sandbox, container or image is gone already
    │   └── Failed         the runtime answered, and refused
    │       └── DataLost   an etcd member's data directory is gone: not started empty
    ├── KubeError          a managed cluster's API refused what oneinfra applies
    ├── SecretsError       the master key or the key store cannot be used
    ├── UnknownEvent       the log holds an event this code cannot read
    ├── DaemonError        the daemon cannot start
    ├── LocalError         the local hypervisors cannot be brought up or down
    ├── JoinError          `node join` cannot join this machine; nothing left behind
    └── CommandFailed      the CLI's one-line reason for exit code 1
        └── WaitFailed     --wait ran out of time; the message says where it is

The event store is a package of its own, with its own root
(`eventstore.EventStoreError`); the daemon maps it at its boundary, as the
CRI client maps grpclib's errors to CRIError at its own.
"""

from __future__ import annotations

ECHOED = 60  # characters of a value an error message quotes, at most


def shown(value: object) -> str:
    """How a message quotes what a person sent: a long value by its first
    characters and its length, so that a refusal stays one short line
    whatever came in (a 1 MB name once took the API a minute to refuse)."""
    if isinstance(value, str | bytes) and len(value) > ECHOED:
        return f"{value[:ECHOED]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= ECHOED * 2 else f"{text[: ECHOED * 2]}... ({len(text)} characters)"


class OneinfraError(Exception):
    """The root of oneinfra's own errors."""


class DomainError(OneinfraError):
    """A command refused by the rules of the fleet; the message says what to fix.

    A refused command appends nothing.
    """


class BackupInvalid(DomainError):
    """A backup's file is not whole, not ours, or not this cluster's: it is
    used for nothing."""


class BackupFailed(OneinfraError):
    """A backup could not be taken; the message says at which step."""


class ServiceError(OneinfraError):
    """The daemon could not take a command."""


class ServiceClosed(ServiceError):
    """The daemon is shutting down and takes no more commands."""


class Conflict(ServiceError):
    """The fleet kept changing under a command; nothing was appended."""


class StateFull(ServiceError):
    """The disk of the state directory is full; nothing was appended, and
    commands work again once there is space."""


class CRIError(OneinfraError):
    def __init__(self, endpoint: str, message: str) -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: {message}")


class Unreachable(CRIError):
    """No answer: the socket is missing, refused, timed out or closed."""


class NotFound(CRIError):
    """The sandbox, container or image does not exist (any more)."""


class Failed(CRIError):
    """The runtime answered, and refused."""


class DataLost(Failed):
    """An etcd member that ran before has no data any more: started again,
    it would crash-loop (others have its log) or, alone, start an empty
    cluster. It is not started."""


class KubeError(OneinfraError):
    """A managed cluster's API refused (or did not answer) what oneinfra
    applies in it; the message says which object."""


class SecretsError(OneinfraError):
    """The master key or the key store cannot be used."""


class UnknownEvent(OneinfraError):
    """The log holds an event this code cannot read (written by newer code?)."""


class DaemonError(OneinfraError):
    """The daemon cannot start; the message says why."""


class LocalError(OneinfraError):
    """The local hypervisors cannot be brought up or down; the message says why."""


class JoinError(OneinfraError):
    """`oneinfra node join` cannot join this machine to the cluster; the
    message says why, and nothing is left half-configured."""


class CommandFailed(OneinfraError):
    """A one-line reason for the CLI's exit code 1."""


class WaitFailed(CommandFailed):
    """The cluster did not get there in time; the message says where it is."""
