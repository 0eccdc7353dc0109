"""Backups of a real cluster's etcd on real containerd: the snapshot
etcdctl writes, read out through CRI, sealed with the cluster's data key on
the management host, and recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from oneinfra import render as bp
from oneinfra.backup.snapshot import SNAPSHOT_FILE
from oneinfra.storage.keystore import KeyStore, read_master_key
from oneinfra.storage.sealedfile import read_sealed
from tests.oneinfra.daemon import Daemon

from .fleet import create, data_dir, fleet, kubeconfig, kubectl
from .test_clusters import on_hypervisors

__all__ = ["fleet"]  # the module's fixture

pytestmark = pytest.mark.e2e

CONFIG_MAPS = 1000
BOLT_MAGIC = (0xED0CDAED).to_bytes(4, "little")  # bbolt's meta page, after its page header


def config_maps(directory: Path, count: int) -> Path:
    items = [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": f"cm-{i}", "namespace": "default"}, "data": {"i": str(i)}}
        for i in range(count)
    ]  # fmt: skip
    path = directory / "config-maps.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def data_key(daemon: Daemon, key_id: str) -> bytes:
    keys = KeyStore(daemon.state_dir / "keys.db", read_master_key(daemon.state_dir / "master.key"))
    try:
        return keys.get(key_id)
    finally:
        keys.close()


def cluster_key_id(daemon: Daemon, name: str) -> str:
    """The cluster's data key, as its ClusterCreated event names it."""
    lines = daemon.cli("history", "--cluster", name, "-o", "json").stdout.splitlines()
    for event in map(json.loads, lines):
        if event["type"] == "ClusterCreated":
            return str(json.loads(event["dataJson"])["key_id"])
    raise AssertionError(f"no ClusterCreated event for {name}")


def test_a_backup_is_the_clusters_etcd_sealed_with_its_key(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, hypervisors = fleet
    cluster = create(daemon, "saved")
    config = kubeconfig(daemon, "saved", tmp_path)
    kubectl(config, "create", "-f", str(config_maps(tmp_path, CONFIG_MAPS)))
    written = kubectl(config, "get", "configmap", f"cm-{CONFIG_MAPS - 1}",
                      "-o", "jsonpath={.metadata.resourceVersion}").stdout  # fmt: skip

    backup = daemon.json("cluster", "backup", "saved", timeout=300)

    assert backup["revision"] >= int(written)
    assert backup["keys"] >= CONFIG_MAPS
    path = Path(backup["location"])
    assert path.parent == daemon.state_dir / "backups" / cluster["clusterId"]
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"/registry/configmaps" not in path.read_bytes()  # sealed
    key = data_key(daemon, cluster_key_id(daemon, "saved"))
    plain = b"".join(read_sealed(path, "saved", cluster["clusterId"], backup["id"], key))
    assert len(plain) == backup["size"] and hashlib.sha256(plain).hexdigest() == backup["sha256"]
    assert plain[16:20] == BOLT_MAGIC  # a bbolt file: etcd's backend
    assert f"/registry/configmaps/default/cm-{CONFIG_MAPS - 1}".encode() in plain

    listed = daemon.json("cluster", "backups", "saved")
    assert [b["id"] for b in listed["backups"]] == [backup["id"]]
    assert "BackupTaken" in daemon.cli("history", "--cluster", "saved").stdout
    age = daemon.scrape()[("oneinfra_backup_age_seconds", (("cluster", "saved"),))]
    assert 0 <= age < 300
    # Nothing left behind on the hypervisor: no reader, no snapshot file.
    readers = on_hypervisors(hypervisors, {bp.LABEL_CLUSTER_ID: cluster["clusterId"],
                                           "oneinfra.io/role": bp.BACKUP_ROLE})  # fmt: skip
    assert all(not sandboxes and not containers for sandboxes, containers in readers.values())
    member = next(c for c in cluster["components"] if c["role"] == "control-plane")
    etcd_data = data_dir(member["hypervisor"]) / "clusters" / cluster["clusterId"] / member["name"]
    assert not (etcd_data / "etcd" / SNAPSHOT_FILE).exists()


def config_map_count(config: Path) -> int:
    names = kubectl(config, "get", "configmaps", "-n", "default", "-o", "name").stdout.split()
    return sum(1 for name in names if name.startswith("configmap/cm-"))


def refused_restore(daemon: Daemon, backup: str, message: str) -> None:
    result = daemon.cli("cluster", "restore", "restored", "--backup", backup, check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "EtcdRestoreStarted" not in daemon.cli("history", "--cluster", "restored").stdout


def test_a_restore_brings_back_what_was_deleted_and_a_clone_has_it_with_its_own_ca(
    fleet: tuple[Daemon, list[dict[str, Any]]], tmp_path: Path
) -> None:
    daemon, _ = fleet
    other = daemon.json("cluster", "backup", "saved", timeout=300)  # another cluster's
    create(daemon, "restored", replicas=3)  # every member rebuilt, started together
    config = kubeconfig(daemon, "restored", tmp_path)
    kubectl(config, "create", "-f", str(config_maps(tmp_path, CONFIG_MAPS)))
    backup = daemon.json("cluster", "backup", "restored", timeout=300)
    kubectl(config, "delete", "--raw", "/api/v1/namespaces/default/configmaps")  # a collection
    assert config_map_count(config) == 0

    # A damaged, a cut and another cluster's file: refused, nothing changed.
    path = Path(backup["location"])
    original = path.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x40
    path.write_bytes(bytes(damaged))
    refused_restore(daemon, backup["id"], "does not open with cluster restored's key")
    path.write_bytes(original[: len(original) // 3])
    refused_restore(daemon, backup["id"], "cut short")
    path.write_bytes(Path(other["location"]).read_bytes())
    refused_restore(daemon, backup["id"], "it is a backup of cluster saved")
    path.write_bytes(original)
    refused_restore(daemon, "20990101T000000Z-000000", "has no backup")

    restored = daemon.json("cluster", "restore", "restored", "--backup", backup["id"],
                           "--wait", "--timeout", "4m", timeout=300)  # fmt: skip
    assert restored["status"]["ready"] and not restored["restoringBackup"]
    # The same kubeconfig (the same PKI), and every ConfigMap back.
    assert config_map_count(config) == CONFIG_MAPS
    history = daemon.cli("history", "--cluster", "restored").stdout
    assert "EtcdRestoreStarted" in history and "EtcdRestoreCompleted" in history
    # Revisions went on, not back: watchers start over instead of missing changes.
    after = daemon.json("cluster", "backup", "restored", timeout=300)
    assert after["revision"] > backup["revision"] + 10**9

    clone = daemon.json("cluster", "create", "copy", "--from-backup", f"restored/{backup['id']}",
                        "--wait", "--timeout", "4m", timeout=300)  # fmt: skip
    assert clone["status"]["ready"]
    copy_config = kubeconfig(daemon, "copy", tmp_path)
    assert config_map_count(copy_config) == CONFIG_MAPS
    authority = "{.clusters[0].cluster.certificate-authority-data}"
    theirs = kubectl(config, "config", "view", "--raw", "-o", f"jsonpath={authority}").stdout
    ours = kubectl(copy_config, "config", "view", "--raw", "-o", f"jsonpath={authority}").stdout
    assert theirs and ours and theirs != ours  # a PKI of its own
