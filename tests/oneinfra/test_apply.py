"""`oneinfra apply -f` and `delete -f` against a daemon (its reconciler off,
its hypervisors never reached): a fleet from files, unchanged when applied
again (nothing appended), the same after `show -o yaml | apply -f -`, a dry
run appending nothing, each change's file and document in the log, the
original oneinfra's samples, and bad files refused whole."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oneinfra.cli import manifests

from .daemon import Daemon
from .test_manifests import cluster_doc, spec_fields

ORIGINAL = Path(__file__).parent / "manifests" / "original"

FLEET = """\
apiVersion: oneinfra.io/v1
kind: Hypervisor
metadata: {name: pub, labels: {zone: a}}
spec: {endpoint: "unix:///run/hv/pub.sock", ipAddress: 192.0.2.1, role: public}
---
apiVersion: oneinfra.io/v1
kind: Hypervisor
metadata: {name: priv0}
spec: {endpoint: "unix:///run/hv/priv0.sock", ipAddress: 198.51.100.1, role: private}
---
apiVersion: oneinfra.io/v1
kind: Cluster
metadata: {name: prod}
spec:
  apiserverExtraSans: [api.example.com]
  vpn: {enabled: true}
  certificateLifetime: 90d
  backups: {every: 1h, keep: 3}
"""


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    started = Daemon(tmp_path / "d").start()
    yield started
    started.stop()


def head(daemon: Daemon) -> int:
    return int(daemon.json("audit", "head")["position"])


def piped(daemon: Daemon, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", "apply", "-f", "-", *args],
        input=text, capture_output=True, text=True, timeout=60, check=False,
        env={"ONEINFRA_SOCKET": str(daemon.socket), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def test_a_fleet_applied_is_there_and_applied_again_appends_nothing(
    daemon: Daemon, tmp_path: Path
) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET)
    planned = daemon.cli("apply", "-f", str(fleet), "--dry-run").stdout
    assert "cluster/prod created (dry run)" in planned and "would send CreateCluster" in planned
    assert head(daemon) == 0  # a dry run appends nothing
    applied = daemon.cli("apply", "-f", str(fleet)).stdout.splitlines()
    assert applied == ["hypervisor/pub created", "hypervisor/priv0 created", "cluster/prod created"]
    shown = daemon.json("cluster", "show", "prod")
    assert shown["vpnEnabled"] and shown["apiserverExtraSans"] == ["api.example.com"]
    assert int(shown["certificateLifetimeSeconds"]) == 90 * 86400
    assert int(shown["backupEverySeconds"]) == 3600 and shown["backupKeep"] == 3
    assert daemon.json("hypervisor", "show", "pub")["labels"] == {"zone": "a"}
    position = head(daemon)
    again = daemon.cli("apply", "-f", str(fleet)).stdout.splitlines()
    assert again == ["hypervisor/pub unchanged", "hypervisor/priv0 unchanged",
                     "cluster/prod unchanged"]  # fmt: skip
    # What show prints, applied again, changes nothing either.
    for kind in ("cluster", "hypervisor"):
        listed = daemon.cli(kind, "list", "-o", "yaml").stdout
        result = piped(daemon, listed)
        assert result.returncode == 0, result.stderr
        assert all(line.endswith(" unchanged") for line in result.stdout.splitlines())
    assert head(daemon) == position
    # Where each change came from is in the log, by file and document.
    history = [json.loads(line) for line in daemon.cli("history", "-o", "json").stdout.splitlines()]
    sources = {json.loads(e["metadataJson"]).get("source") for e in history}
    assert {f"{fleet}#1", f"{fleet}#2", f"{fleet}#3"} <= sources
    assert f"(from {fleet}#3)" in daemon.cli("history").stdout


def test_a_change_is_applied_and_a_fixed_field_refuses_its_object_only(
    daemon: Daemon, tmp_path: Path
) -> None:
    daemon.add_hypervisors()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(FLEET.replace("vpn: {enabled: true}", "controlPlaneReplicas: 1"))
    daemon.cli("apply", "-f", str(fleet))
    changed = FLEET.replace("vpn: {enabled: true}", "controlPlaneReplicas: 3").replace(
        "zone: a", "zone: b"
    )
    fleet.write_text(changed)
    assert "cluster/prod configured" in daemon.cli("apply", "-f", str(fleet)).stdout
    assert daemon.json("cluster", "show", "prod")["controlPlaneReplicas"] == 3
    position = head(daemon)
    fleet.write_text(changed.replace("controlPlaneReplicas: 3", "podCidr: 10.1.0.0/16"))
    refused = daemon.cli("apply", "-f", str(fleet), check=False)
    assert refused.returncode == 1
    assert "cluster/prod refused: spec.podCidr ('10.244.0.0/16' -> '10.1.0.0/16'): cannot " \
           "change after creation" in refused.stdout  # fmt: skip
    assert "1 of 3 objects not applied" in refused.stderr
    assert head(daemon) == position


def test_the_originals_samples_apply_and_delete_removes_them(daemon: Daemon) -> None:
    applied = daemon.cli("apply", "-f", str(ORIGINAL), "--map-version", "1.18.2=v1.37.2")
    assert "Component objects are not applied" in applied.stderr
    lines = applied.stdout.splitlines()
    assert len(lines) == 4 + 18 and all(line.endswith(" created") for line in lines)
    clusters = {c["name"]: c for c in daemon.json("cluster", "list")}
    assert len(clusters) == 18 and clusters["ha-cluster"]["controlPlaneReplicas"] == 3
    assert clusters["vpn-cluster"]["vpnEnabled"]
    deleted = daemon.cli("delete", "-f", str(ORIGINAL)).stdout.splitlines()
    assert len(deleted) == 22 and all(line.endswith(" deleted") for line in deleted)
    assert daemon.json("cluster", "list") == [] and daemon.json("hypervisor", "list") == []


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (FLEET + "---\n" + FLEET.split("---\n")[2], "is also in stdin#3"),
        ("apiVersion: oneinfra.io/v1\nkind: Cluster\nmetadata: {name: x}\nspec: {size: 3}\n",
         "unknown field `size`"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "v1 ConfigMap is not known"),
        ("key: [unclosed\n", "not YAML"),
        ("a: &a [1]\nb: *a\n", "an alias at line 2"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_whole_in_one_line(daemon: Daemon, text: str, said: str) -> None:
    result = piped(daemon, FLEET + "---\n" + text if "also in" not in said else text)
    assert result.returncode == 1 and said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == "" and head(daemon) == 0  # nothing applied, not even the good ones


@pytest.fixture(scope="module")
def fleet_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    started = Daemon(tmp_path_factory.mktemp("fleet")).start()
    started.add_hypervisors(private=5)  # room for 5 replicas
    yield started
    started.stop()


NAMES = itertools.count()
# What the daemon takes: leaves that do not outlive their CAs.
daemon_specs = st.fixed_dictionaries({}, optional={
    **spec_fields,
    "certificateLifetime": st.sampled_from(["90d", "365d", 86400]),
    "caLifetime": st.sampled_from(["3650d", "7300d"]),
})  # fmt: skip


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(daemon_specs, min_size=1, max_size=4))
def test_random_fleets_applied_to_a_daemon_are_what_it_holds(
    fleet_daemon: Daemon, tmp_path: Path, fleet: list[dict[str, Any]]
) -> None:
    docs = [cluster_doc(f"r{next(NAMES)}", **spec) for spec in fleet]
    path = tmp_path / f"fleet-{docs[0]['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    fleet_daemon.cli("apply", "-f", str(path))
    for doc in docs:
        shown = yaml.safe_load(
            fleet_daemon.cli("cluster", "show", doc["metadata"]["name"], "-o", "yaml").stdout
        )["spec"]
        for field, value in doc["spec"].items():
            if field in ("certificateLifetime", "caLifetime"):
                assert manifests.seconds(shown[field], field) == manifests.seconds(value, field)
            elif field == "apiserverExtraSans":
                assert sorted(shown[field]) == sorted(value)
            elif field == "vpn":
                assert shown["vpn"]["enabled"] == value["enabled"]
            else:
                assert shown[field] == value, field
    assert all(
        line.endswith(" unchanged")
        for line in fleet_daemon.cli("apply", "-f", str(path)).stdout.splitlines()
    )
