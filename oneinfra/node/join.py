"""`oneinfra node join`, the I/O around discovery.py and kubelet.py: ask
the cluster, check the token, write the kubelet's files all or none, start
the kubelet."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .. import cgroups
from ..errors import JoinError
from . import discovery, kubelet
from .discovery import Discovered, Token
from .kubelet import NodeSettings

TIMEOUT = 10.0
STARTING = "oneinfra node join: starting the kubelet"  # its last word before the exec
SYSTEMD_UNITS = Path("/etc/systemd/system")


@dataclass(frozen=True)
class JoinRequest:
    endpoint: str  # host:port or https://host:port
    token: Token
    ca_hashes: list[str]
    settings: NodeSettings
    kubelet: Path
    foreground: bool
    discovery_timeout: float = 60.0


def base_url(endpoint: str) -> str:
    url = endpoint if endpoint.startswith("https://") else f"https://{endpoint}"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise JoinError(f"the endpoint {endpoint!r} is not host:port: {error}") from None
    if not parsed.host:
        raise JoinError(f"the endpoint {endpoint!r} is not host:port")
    return url.rstrip("/")


def get(client: httpx.Client, url: str, what: str) -> dict[str, Any]:
    try:
        reply = client.get(url)
    except httpx.HTTPError as error:
        raise JoinError(f"cannot reach the cluster for {what} at {url}: {error}") from None
    if reply.status_code == 401:
        raise JoinError(f"the cluster refuses the token reading {what}: expired, revoked or wrong")
    if reply.status_code != 200:
        raise JoinError(f"the cluster answered {reply.status_code} for {what} at {url}")
    try:
        found = reply.json()
    except ValueError:
        raise JoinError(f"the cluster's answer for {what} at {url} is not JSON") from None
    if not isinstance(found, dict):
        raise JoinError(f"the cluster's answer for {what} at {url} is not an object")
    return found


def discover(endpoint: str, token: Token, ca_hashes: list[str], timeout: float) -> Discovered:
    """cluster-info, read without trusting the endpoint (its signature and
    the pinned CA hash are the trust), as kubeadm does; asked again while
    the token's signature is not there yet, for `timeout` seconds."""
    url = f"{base_url(endpoint)}/api/v1/namespaces/kube-public/configmaps/cluster-info"
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=False, timeout=TIMEOUT) as untrusted:
        while True:
            data = get(untrusted, url, "cluster-info").get("data")
            if not isinstance(data, dict):
                raise JoinError("the cluster's cluster-info has no data")
            try:
                return discovery.verified_cluster_info(data, token, ca_hashes)
            except discovery.NotSigned:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1)


def trusted_client(found: Discovered, token: Token) -> httpx.Client:
    context = ssl.create_default_context(cadata=found.ca_pem)
    return httpx.Client(
        base_url=found.server,
        verify=context,
        timeout=TIMEOUT,
        headers={"Authorization": f"Bearer {token}"},
    )


def cluster_kubelet_config(found: Discovered, token: Token, node_name: str) -> str:
    """Read with the token: a token the cluster no longer takes fails here.
    A Ready node of the same name is refused, as kubeadm does."""
    with trusted_client(found, token) as client:
        reply = get(client, "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
                    "the kubelet-config ConfigMap")  # fmt: skip
        try:
            node = client.get(f"/api/v1/nodes/{node_name}")
        except httpx.HTTPError as error:
            raise JoinError(f"cannot reach the cluster for node {node_name}: {error}") from None
    if node.status_code == 200 and ready(node.json()):
        raise JoinError(
            f"a node named {node_name} is in the cluster already, and Ready: "
            f"give this one another name (--node-name), or remove that one"
        )
    config = (reply.get("data") or {}).get("kubelet")
    if not isinstance(config, str):
        raise JoinError("the cluster's kubelet-config ConfigMap has no 'kubelet' entry")
    return config


def ready(node: Any) -> bool:
    conditions = ((node or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def check_machine(settings: NodeSettings, binary: Path) -> None:
    if os.geteuid() != 0:
        raise JoinError("joining a node needs root (the kubelet's files, cgroups, the CRI socket)")
    if not os.access(binary, os.X_OK):
        raise JoinError(f"the kubelet {binary} is not an executable file")
    socket = settings.cri_socket.removeprefix("unix://")
    if not Path(socket).is_socket():
        raise JoinError(f"no container runtime listens at {settings.cri_socket}: start containerd")
    if settings.kubeconfig.exists():
        raise JoinError(
            f"this machine has joined a cluster already ({settings.kubeconfig} exists): "
            f"'oneinfra node reset' first"
        )


def files(found: Discovered, token: Token, config: str, settings: NodeSettings) -> dict[Path, str]:
    return {
        settings.ca_file: found.ca_pem,
        settings.bootstrap_kubeconfig: kubelet.bootstrap_kubeconfig(
            found.server, settings.ca_file, str(token)
        ),
        settings.config_file: kubelet.kubelet_configuration(config, settings),
    }


def write_all(contents: dict[Path, str]) -> None:
    """Every file, or none: what was written is removed on a failure."""
    written: list[Path] = []
    try:
        for path, text in contents.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            written.append(path)
            with os.fdopen(fd, "w") as out:
                out.write(text)
    except OSError as error:
        for path in written:
            path.unlink(missing_ok=True)
        raise JoinError(f"cannot write the kubelet's files: {error}") from None


def reset(settings: NodeSettings) -> list[Path]:
    """Remove what `join` wrote and what the kubelet made of it; the files gone."""
    gone = []
    for path in (settings.ca_file, settings.bootstrap_kubeconfig, settings.kubeconfig,
                 settings.config_file, SYSTEMD_UNITS / kubelet.UNIT_NAME):  # fmt: skip
        if path.exists():
            path.unlink()
            gone.append(path)
    if settings.cert_dir.exists():
        shutil.rmtree(settings.cert_dir)
        gone.append(settings.cert_dir)
    return gone


def join(request: JoinRequest, say: Callable[[str], None]) -> None:
    """Checks first, then writes: a refusal leaves the machine as it was."""
    settings = request.settings
    check_machine(settings, request.kubelet)
    found = discover(request.endpoint, request.token, request.ca_hashes,
                     request.discovery_timeout)  # fmt: skip
    say(f"cluster-info verified: {found.server}, CA pinned")
    config = cluster_kubelet_config(found, request.token, settings.node_name)
    write_all(files(found, request.token, config, settings))
    if settings.cgroup_root is not None and settings.cgroup_v1:
        cgroups.make_root(settings.cgroup_root)
    command = kubelet.kubelet_command(request.kubelet, settings)
    if request.foreground:
        say(STARTING)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
    start_unit(command, settings)
    say(f"the kubelet runs as {kubelet.UNIT_NAME}: node {settings.node_name} joins as it starts")


def systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def start_unit(command: list[str], settings: NodeSettings) -> None:
    if not systemd_runs():
        reset(settings)
        raise JoinError("systemd does not run here: give --foreground to run the kubelet in it")
    unit = SYSTEMD_UNITS / kubelet.UNIT_NAME
    unit.write_text(kubelet.systemd_unit(command))
    for args in (["daemon-reload"], ["enable", "--now", kubelet.UNIT_NAME]):
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reset(settings)
            raise JoinError(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
