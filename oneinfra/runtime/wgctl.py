"""`wg` inside a cluster's running VPN server container, through CRI's
ExecSync, as etcdctl is run in etcd's: the peers the server has, and the
changes that bring them to the cluster's (reconcile/vpn.py decides them)."""

from __future__ import annotations

import msgspec

from ..render.vpn import INTERFACE
from .cri import Failed, HypervisorClient

WG_TIMEOUT = 10  # seconds for one wg call


class ServedPeer(msgspec.Struct, frozen=True, gc=False):
    public_key: str
    allowed_ips: tuple[str, ...]
    endpoint: str  # where its packets came from last ("(none)" before any)
    latest_handshake: int  # seconds since the epoch; 0: never
    received: int = 0  # bytes, since the server started
    sent: int = 0


def parse_dump(output: str) -> tuple[str, list[ServedPeer]]:
    """`wg show INTERFACE dump`: the interface's line (its public key
    second), then one line per peer, tab-separated."""
    lines = [line.split("\t") for line in output.splitlines() if line.strip()]
    if not lines or len(lines[0]) < 3:
        raise ValueError(f"not the output of 'wg show {INTERFACE} dump': {output[:200]!r}")
    peers = []
    for fields in lines[1:]:
        if len(fields) < 5:
            raise ValueError(f"a peer line of 'wg show dump' with {len(fields)} fields")
        allowed = () if fields[3] == "(none)" else tuple(sorted(fields[3].split(",")))
        received, sent = (int(f) for f in fields[5:7]) if len(fields) >= 7 else (0, 0)
        peers.append(ServedPeer(fields[0], allowed, fields[2], int(fields[4]), received, sent))
    return lines[0][1], peers


class WireGuard:
    """wg in one running VPN server container."""

    def __init__(self, client: HypervisorClient, container_id: str) -> None:
        self.client = client
        self.container_id = container_id

    async def run(self, *arguments: str) -> str:
        reply = await self.client.exec_sync(self.container_id, ["wg", *arguments], WG_TIMEOUT)
        if reply.exit_code != 0:
            message = (reply.stderr or reply.stdout).decode(errors="replace").strip()
            raise Failed(self.client.endpoint, f"wg {arguments[0]}: {message}")
        return reply.stdout.decode(errors="replace")

    async def peers(self) -> tuple[str, list[ServedPeer]]:
        """The server's public key and the peers it serves."""
        try:
            return parse_dump(await self.run("show", INTERFACE, "dump"))
        except ValueError as error:
            raise Failed(self.client.endpoint, str(error)) from None

    async def set(self, arguments: list[str]) -> None:
        """One `wg set`: every change of a pass at once."""
        if arguments:
            await self.run("set", INTERFACE, *arguments)
