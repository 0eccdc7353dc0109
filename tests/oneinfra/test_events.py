"""Event encoding: stable type names, schema versions, and upcasting old shapes."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

import msgspec
import pytest

from oneinfra.errors import UnknownEvent
from oneinfra.model import commands as cmd
from oneinfra.model import events as ev

from .harness import Fleet

PEER_KEY = "3U6K7Bj59QrzAkqtGOf4TO9GEUKFJcxuoWJdK6BJbh4="  # a worker's, as `wg pubkey` prints


def test_every_event_of_a_real_history_round_trips() -> None:
    fleet = Fleet()
    fleet.hypervisors()
    fleet.run(cmd.CreateCluster(name="prod", control_plane_replicas=3))
    fleet.run(cmd.ReplaceEtcdMember(cluster="prod", component="control-plane-1",
                                    member_id=0x1234, reason="it crash-loops"))  # fmt: skip
    prod = fleet.state.clusters["prod"]
    backup = ev.Backup(
        backup_id="20261207T112233Z-abcdef", taken_at=1, member="control-plane-0",
        revision=5, keys=3, size=10, etcd_hash=7, sha256="0" * 64, location="/b",
    )  # fmt: skip
    fleet.run(cmd.RecordBackup(cluster="prod", cluster_id=prod.cluster_id, backup=backup))
    fleet.run(cmd.RecordBackupFailure(cluster="prod", cluster_id=prod.cluster_id, reason="down"))
    fleet.run(cmd.ScheduleBackups(cluster="prod", every=3600, keep=1))
    fleet.run(cmd.RestoreCluster(cluster="prod", backup_id=backup.backup_id))
    fleet.run(cmd.CompleteEtcdRestore(cluster="prod", backup_id=backup.backup_id))
    fleet.run(cmd.PruneBackups(cluster="prod", backup_ids=[backup.backup_id]))
    fleet.run(cmd.ScaleCluster(name="prod", control_plane_replicas=1))
    fleet.run(cmd.RenewCertificates(cluster="prod"))
    fleet.run(cmd.SetCertificateLifetimes(cluster="prod", certificate_lifetime=3600))
    fleet.run(cmd.RotateCA(cluster="prod", phase="prepare"))
    fleet.run(cmd.RotateCA(cluster="prod", phase="complete"))
    fleet.clock += dt.timedelta(hours=1)
    fleet.run(cmd.RetireServiceAccountKey(cluster="prod"))
    fleet.run(cmd.LabelHypervisor(name="private-0", set={"zone": "a"}))
    fleet.run(cmd.IssueKubeconfig(cluster="prod"))
    fleet.run(cmd.CreateJoinToken(cluster="prod"))
    token = next(e for e in fleet.log if isinstance(e, ev.JoinTokenCreated))
    fleet.run(cmd.RevokeJoinToken(cluster="prod", token_id=token.token_id))
    fleet.run(cmd.EnableVpn(cluster="prod"))
    fleet.run(cmd.AddVpnPeer(cluster="prod", node="w0", public_key=PEER_KEY))
    fleet.run(cmd.RemoveNode(cluster="prod", node="w0"))
    fleet.run(cmd.DeleteCluster(name="prod"))
    fleet.run(cmd.RemoveHypervisor(name="private-0"))
    kinds = set()
    for event in fleet.log:
        event_type, version, data = ev.encode(event)
        assert event_type == type(event).__name__ and version == 1
        assert ev.decode(event_type, version, data) == event
        kinds.add(event_type)
    assert kinds == {ev.type_name(cls) for cls in typing.get_args(ev.FleetEvent)}


def test_status_events_round_trip() -> None:
    for event in (
        ev.ClusterStatusChanged(cluster="a", cluster_id="x", phase="ready", reason="ok"),
        ev.ComponentStatusChanged(
            cluster="a",
            cluster_id="x",
            component="ingress",
            hypervisor="h",
            phase="failed",
            reason="why",
        ),
        ev.HypervisorStatusChanged(name="h", reachable=False, error="refused"),
    ):
        assert ev.decode(*ev.encode(event)) == event


def test_an_old_shape_is_upcast_step_by_step() -> None:
    """A stored ClusterScaled of (pretend) schema 1 said 'replicas'; schema 2
    renamed it and schema 3 is today's: two upcasters bring it forward."""

    class ClusterScaledV3(ev.ClusterScaled, frozen=True, tag="ClusterScaled"):
        schema_version = 3

    def v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
        raw["control_plane_replicas"] = raw.pop("replicas")
        return raw

    def v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
        return raw

    stored = msgspec.json.encode({"type": "ClusterScaled", "name": "prod", "replicas": 3})
    codec = ev.Codec(
        {**ev.EVENT_TYPES, "ClusterScaled": ClusterScaledV3},
        {("ClusterScaled", 1): v1_to_v2, ("ClusterScaled", 2): v2_to_v3},
    )
    decoded = codec.decode("ClusterScaled", 1, stored)
    assert decoded == ClusterScaledV3(name="prod", control_plane_replicas=3)
    current = codec.encode(decoded)
    assert current[1] == 3 and codec.decode(*current) == decoded


def test_unreadable_events_are_named() -> None:
    with pytest.raises(UnknownEvent, match="unknown event type 'Teleported'"):
        ev.decode("Teleported", 1, b"{}")
    with pytest.raises(UnknownEvent, match="newer than this code"):
        ev.decode("ClusterDeleted", 9, b'{"type":"ClusterDeleted","name":"x"}')
    with pytest.raises(UnknownEvent, match="no upcaster for ClusterDeleted from schema version 0"):
        ev.decode("ClusterDeleted", 0, b'{"type":"ClusterDeleted","name":"x"}')
