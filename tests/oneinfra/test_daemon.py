"""The daemon over a real Unix socket, driven by the real CLI."""

from __future__ import annotations

import base64
import grp
import json
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import anyio
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from eventstore import SQLiteEventStore
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub
from oneinfra.model import events as ev
from oneinfra.pki import x509 as pki
from oneinfra.pki.sealing import unseal
from oneinfra.storage.keystore import KeyStore

from .daemon import Daemon
from .harness import NOW
from .test_pki import private_key_forms, sealed_keys


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = Daemon(tmp_path).start()
    yield running
    if running.process is not None:
        running.stop(signal.SIGKILL)


def test_the_socket_is_private_to_its_owner(daemon: Daemon) -> None:
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600


def test_a_socket_group_widens_it_to_0660(tmp_path: Path) -> None:
    group = grp.getgrgid(os.getgid()).gr_name
    running = Daemon(tmp_path, "--socket-group", group).start()
    try:
        assert stat.S_IMODE(running.socket.stat().st_mode) == 0o660
        assert running.socket.stat().st_gid == os.getgid()
    finally:
        running.stop()


def test_every_cli_command_end_to_end(daemon: Daemon, tmp_path: Path) -> None:
    daemon.add_hypervisors()
    hypervisors = daemon.json("hypervisor", "list")
    assert [h["name"] for h in hypervisors] == ["priv0", "priv1", "priv2", "pub"]
    assert daemon.json("hypervisor", "show", "priv0")["ipAddress"] == "198.51.100.1"
    daemon.cli("hypervisor", "label", "priv0", "zone=a", "disk=ssd")
    labelled = daemon.json("hypervisor", "label", "priv0", "disk-")
    assert labelled["labels"] == {"zone": "a"}

    created = daemon.json("cluster", "create", "prod", "--control-plane-replicas", "3",
                          "--apiserver-extra-san", "api.example.com")  # fmt: skip
    assert created["name"] == "prod" and created["controlPlaneReplicas"] == 3
    shown = daemon.json("cluster", "show", "prod")
    assert shown["kubernetesVersion"] == "v1.37.2"
    assert shown["apiServerEndpoint"] == "https://192.0.2.1:30000"
    assert {c["role"] for c in shown["components"]} == {"control-plane", "ingress"}
    assert all({"name", "role", "hypervisor", "ports"} <= c.keys() for c in shown["components"])
    assert shown["status"]["ready"] is False and shown["status"]["phase"] == "pending"
    # -o yaml: the cluster as a manifest, its spec what apply -f reads, the rest its status.
    manifest = yaml.safe_load(daemon.cli("cluster", "show", "prod", "-o", "yaml").stdout)
    assert (manifest["apiVersion"], manifest["kind"]) == ("oneinfra.io/v1", "Cluster")
    assert manifest["metadata"] == {"name": "prod"}
    assert manifest["spec"]["controlPlaneReplicas"] == 3
    assert manifest["spec"]["apiserverExtraSans"] == ["api.example.com"]
    assert manifest["status"]["components"] == shown["components"]
    assert "control-plane-2" in daemon.cli("cluster", "show", "prod").stdout
    assert [c["name"] for c in daemon.json("cluster", "list")] == ["prod"]

    scaled = daemon.json("cluster", "scale", "prod", "--control-plane-replicas", "1")
    assert scaled["controlPlaneReplicas"] == 1
    kubeconfig = yaml.safe_load(
        daemon.cli("cluster", "kubeconfig", "prod", "--user", "alice", "--group", "devs",
                   "--ttl", "2h").stdout
    )  # fmt: skip
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://192.0.2.1:30000"

    history = [json.loads(line) for line in daemon.cli("history", "-o", "json").stdout.splitlines()]
    types = Counter(event["type"] for event in history)
    assert types["ClusterCreated"] == 1 and types["KubeconfigIssued"] == 1
    assert [e["position"] for e in history] == list(range(1, len(history) + 1))
    only_prod = daemon.cli("history", "--cluster", "prod", "-o", "json").stdout.splitlines()
    assert all(json.loads(e)["type"] not in ("HypervisorRegistered",) for e in only_prod)
    since = daemon.cli("history", "--since", "5", "-o", "json").stdout.splitlines()
    assert json.loads(since[0])["position"] == 5
    assert "ClusterCreated" in daemon.cli("history").stdout

    at_creation = next(e["position"] for e in history if e["type"] == "ClusterCreated")
    replayed = daemon.json("replay", "--at", str(at_creation - 1))
    assert replayed["clusters"] == [] and len(replayed["hypervisors"]) == 4
    later = daemon.json("replay", "--at", history[-1]["recordedAt"])
    assert later["position"] == history[-1]["position"]
    assert "ok:" in daemon.cli("audit", "verify").stdout

    deleted = daemon.json("cluster", "delete", "prod")
    assert deleted["position"] > history[-1]["position"]
    assert daemon.json("cluster", "list") == []
    daemon.cli("hypervisor", "remove", "priv2")
    assert "priv2" not in daemon.cli("hypervisor", "list").stdout
    assert daemon.cli("version").stdout.startswith("oneinfra ")


def test_refusals_exit_1_with_one_line_and_usage_errors_exit_2(daemon: Daemon) -> None:
    refused = daemon.cli("cluster", "create", "Bad_Name", check=False)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "DNS-1123" in refused.stderr
    missing = daemon.cli("cluster", "show", "ghost", check=False)
    assert missing.returncode == 1 and "unknown cluster 'ghost'" in missing.stderr
    usage = daemon.cli("cluster", "scale", "x", check=False)
    assert usage.returncode == 2 and "--control-plane-replicas" in usage.stderr
    bad_ttl = daemon.cli("cluster", "kubeconfig", "x", "--ttl", "soon", check=False)
    assert bad_ttl.returncode == 2 and "duration" in bad_ttl.stderr


def test_an_unreachable_daemon_is_exit_1(tmp_path: Path) -> None:
    nobody = Daemon(tmp_path)
    result = nobody.cli("cluster", "list", check=False)
    assert result.returncode == 1
    assert "cannot reach the oneinfra daemon" in result.stderr and "Traceback" not in result.stderr


def test_the_history_names_the_caller(daemon: Daemon) -> None:
    daemon.add_hypervisors(private=1)
    (event, *_) = [
        json.loads(line) for line in daemon.cli("history", "-o", "json").stdout.splitlines()
    ]
    metadata = json.loads(event["metadataJson"])
    assert metadata["actor"]["uid"] == os.getuid()
    assert metadata["actor"]["gid"] == os.getgid()
    assert metadata["actor"]["pid"] > 0 and metadata["actor"]["pid"] != os.getpid()
    assert metadata["command"] == "RegisterHypervisor"
    assert metadata["correlation_id"] and metadata["causation_id"]


def test_fifty_concurrent_clients_lose_and_duplicate_nothing(daemon: Daemon) -> None:
    daemon.add_hypervisors()
    names = [f"c{i % 25}" for i in range(50)]  # 25 names, each asked for twice

    async def create_all() -> list[str]:
        outcomes: list[str] = []

        async def create(name: str) -> None:
            channel = Channel(path=str(daemon.socket))
            try:
                reply = await FleetStub(channel).CreateCluster(api.CreateClusterRequest(name=name))
                outcomes.append(f"created {reply.name}")
            except GRPCError as error:
                assert "already exists" in (error.message or "")
                outcomes.append(f"refused {name}")
            finally:
                channel.close()

        async with anyio.create_task_group() as tasks:
            for name in names:
                tasks.start_soon(create, name)
        return outcomes

    outcomes = anyio.run(create_all)
    assert len(outcomes) == 50
    assert sorted(o for o in outcomes if o.startswith("created")) == sorted(
        f"created c{i}" for i in range(25)
    )
    assert Counter(o.split()[1] for o in outcomes) == dict.fromkeys((f"c{i}" for i in range(25)), 2)
    assert sorted(c["name"] for c in daemon.json("cluster", "list")) == sorted(
        f"c{i}" for i in range(25)
    )
    history = daemon.cli("history", "-o", "json").stdout.splitlines()
    assert sum(json.loads(e)["type"] == "ClusterCreated" for e in history) == 25
    ports: Counter[tuple[str, int]] = Counter()
    for cluster in daemon.json("cluster", "list"):
        for component in cluster["components"]:
            for port in component["ports"].values():
                ports[(component["hypervisor"], port)] += 1
    assert max(ports.values()) == 1


def test_sigterm_exits_0_and_a_restart_has_the_same_state(daemon: Daemon) -> None:
    daemon.add_hypervisors()
    daemon.cli("cluster", "create", "prod", "--control-plane-replicas", "3")
    before = (daemon.json("cluster", "list"), daemon.json("hypervisor", "list"))
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    daemon.start()
    assert (daemon.json("cluster", "list"), daemon.json("hypervisor", "list")) == before
    assert "ok:" in daemon.cli("audit", "verify").stdout


def test_after_kill_9_the_stale_socket_is_cleared_and_state_kept(daemon: Daemon) -> None:
    daemon.add_hypervisors()
    daemon.cli("cluster", "create", "prod")
    daemon.stop(signal.SIGKILL)
    assert daemon.socket.exists()  # left behind by the killed daemon
    daemon.start()
    assert [c["name"] for c in daemon.json("cluster", "list")] == ["prod"]


def test_a_second_daemon_on_the_same_state_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    other = Daemon(tmp_path)
    other.socket = tmp_path / "other.sock"
    process = subprocess.run(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir",
         str(daemon.state_dir), "--socket", str(other.socket)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert process.returncode == 1
    assert "another oneinfra daemon is using" in process.stderr


def pump(stream: IO[str], into: queue.Queue[str]) -> None:
    """Move a child's output lines into a queue, so a test can wait with a timeout."""
    for line in stream:
        into.put(line)


def test_history_follow_streams_new_events_as_they_happen(daemon: Daemon) -> None:
    daemon.add_hypervisors()
    env = dict(os.environ, ONEINFRA_SOCKET=str(daemon.socket))
    follower = subprocess.Popen(
        [sys.executable, "-m", "oneinfra", "history", "--follow", "--since", "2", "-o", "json"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert follower.stdout is not None
    reader = threading.Thread(target=pump, args=(follower.stdout, lines), daemon=True)
    reader.start()
    try:
        seen = [json.loads(lines.get(timeout=30)) for _ in range(3)]  # positions 2, 3, 4
        assert [e["position"] for e in seen] == [2, 3, 4]
        daemon.cli("cluster", "create", "live")
        while (event := json.loads(lines.get(timeout=30)))["type"] != "ClusterCreated":
            pass
        assert json.loads(event["dataJson"])["name"] == "live"
    finally:
        follower.terminate()
        follower.wait(timeout=10)


def test_no_private_key_in_clear_in_the_daemons_files(daemon: Daemon, tmp_path: Path) -> None:
    """Every key the daemon made or was given, in PEM, DER and raw form, is
    absent from its state directory: only sealed copies are there."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = pki.issue_ca("hypervisor-ca", ca_key, NOW, os.urandom)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = pki.issue_leaf(ca, ca_key, client_key, common_name="oneinfra",
                            usages=pki.CLIENT, now=NOW, entropy=os.urandom)  # fmt: skip
    files = {"ca.pem": pki.cert_pem(ca), "client.pem": pki.cert_pem(client),
             "client.key": pki.key_pem(client_key).decode()}  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    daemon.add_hypervisors()
    daemon.cli("hypervisor", "add", "remote", "--endpoint", "tcp://203.0.113.9:10010",
               "--ip-address", "203.0.113.9", "--private", "--ca-cert", str(tmp_path / "ca.pem"),
               "--client-cert", str(tmp_path / "client.pem"),
               "--client-key", str(tmp_path / "client.key"))  # fmt: skip
    assert daemon.json("hypervisor", "show", "remote")["mutualTls"] is True
    daemon.cli("cluster", "create", "prod", "--control-plane-replicas", "3")
    kubeconfig = yaml.safe_load(daemon.cli("cluster", "kubeconfig", "prod").stdout)
    assert daemon.stop() == 0

    master = (daemon.state_dir / "master.key").read_bytes()
    keys = KeyStore(daemon.state_dir / "keys.db", master)
    secrets = private_key_forms(pki.key_pem(client_key))
    secrets += private_key_forms(
        base64.b64decode(kubeconfig["users"][0]["user"]["client-key-data"])
    )
    history = anyio.run(read_events, daemon.state_dir / "events.db")
    for event in history:
        for sealed in sealed_keys(event):
            secrets += private_key_forms(unseal(sealed, keys.get(sealed.key_id)))
            secrets.append(keys.get(sealed.key_id))
    keys.close()
    assert len(secrets) > 50
    stored = b"".join(p.read_bytes() for p in daemon.state_dir.iterdir() if p.name != "master.key")
    for secret in secrets:
        assert secret not in stored


async def read_events(path: Path) -> list[ev.Event]:
    async with await SQLiteEventStore.open(path, read_only=True) as store:
        return [ev.decode(r.type, r.schema_version, r.data) async for r in store.read_all()]


def test_info_names_the_daemon_s_store_position_and_role(daemon: Daemon) -> None:
    daemon.add_hypervisors(private=1)
    info = daemon.json("info")
    assert info["store"] == str(daemon.state_dir / "events.db")
    assert info["position"] == 2 and info["role"] == "not reconciling"
    assert "term" not in info or info["term"] == 0  # one daemon on its file: no terms
    table = daemon.cli("info").stdout
    assert "role      not reconciling" in table and "leader" not in table
