"""`oneinfra node join`, the I/O around discovery.py and kubelet.py: ask
the cluster, check the token, write the kubelet's files all or none, start
the kubelet."""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
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
from cryptography.hazmat.primitives.asymmetric import ec

from .. import cgroups
from ..errors import JoinError
from ..pki import wireguard
from ..render.addons import NODE_LINKS
from . import discovery, kubelet, vpn
from .discovery import Discovered, Token
from .kubelet import NodeSettings
from .vpn import VpnInfo

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
    require_vpn: bool = False  # the VPN is joined when the cluster has one; this refuses without
    peer_timeout: float = 60.0  # for the daemon to answer the VPN peer's request


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


VPN_INFO_URL = "/api/v1/namespaces/kube-public/configmaps/oneinfra-vpn"
CSR_URL = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
VPN_TOOLS = ("ip", "wg")  # iproute2, wireguard-tools
VPN_UNIT = "oneinfra-vpn.service"


def vpn_files(settings: NodeSettings) -> tuple[Path, Path, Path]:
    """The worker's end of the VPN: its private key, its certificate, the
    script that brings the tunnel up."""
    directory = settings.config_dir / "oneinfra-vpn"
    return directory / "private.key", directory / "peer.crt", directory / "up.sh"


def cluster_vpn(found: Discovered, token: Token) -> VpnInfo | None:
    """The cluster's VPN, read with the token; None when it has none (the
    ConfigMap absent, and so the Role that lets joining workers read it)."""
    with trusted_client(found, token) as client:
        try:
            reply = client.get(VPN_INFO_URL)
        except httpx.HTTPError as error:
            raise JoinError(f"cannot reach the cluster for its VPN: {error}") from None
    if reply.status_code in (403, 404):
        return None
    if reply.status_code != 200:
        raise JoinError(f"the cluster answered {reply.status_code} for its VPN's ConfigMap")
    return vpn.vpn_info(reply.json().get("data"))


def check_vpn_tools() -> None:
    missing = [t for t in VPN_TOOLS if shutil.which(t) is None]
    if not Path("/sys/module/wireguard").exists() and shutil.which("wireguard-go") is None:
        missing.append("wireguard-go (this kernel has no WireGuard)")
    if missing:
        raise JoinError(
            f"the cluster's workers join its VPN, and this machine lacks {', '.join(missing)}: "
            "install iproute2, wireguard-tools and, without kernel WireGuard, wireguard-go"
        )


@dataclass(frozen=True)
class Peer:
    private_key: bytes
    address: str
    certificate: str


def register_peer(found: Discovered, token: Token, node: str, info: VpnInfo,
                  timeout: float) -> Peer:  # fmt: skip
    """A new key pair; its public half filed with the token for this node;
    the address the daemon grants it, from the certificate it signs."""
    private = wireguard.new_private_key(secrets.token_bytes)
    public = wireguard.public_key(private)
    name = f"oneinfra-vpn-{node[:200]}-{secrets.token_hex(4)}"
    request = vpn.signing_request(name, node, public, info, ec.generate_private_key(ec.SECP256R1()))
    deadline = time.monotonic() + timeout
    with trusted_client(found, token) as client:
        file_csr(client, request, "the VPN peer request")
        while True:
            csr = get(client, f"{CSR_URL}/{name}", "the VPN peer request")
            address = vpn.answer(csr, found.ca_pem, node, info)
            if address is not None:
                certificate = csr["status"]["certificate"]
                return Peer(private, address, base64_text(certificate))
            if time.monotonic() > deadline:
                raise JoinError(
                    f"the daemon did not answer the VPN peer request {name} in {timeout:.0f} s: "
                    "does oneinfra's daemon run, and reach the cluster?"
                )
            time.sleep(0.5)


def file_csr(client: httpx.Client, request: dict[str, Any], what: str) -> None:
    """A CertificateSigningRequest filed; a refusal says why."""
    try:
        filed = client.post(CSR_URL, json=request)
    except httpx.HTTPError as error:
        raise JoinError(f"cannot file {what}: {error}") from None
    if filed.status_code not in (200, 201):
        raise JoinError(f"the cluster refused {what}: {message_of(filed)}")


def base64_text(value: str) -> str:
    return base64.b64decode(value).decode()


def message_of(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("message") or reply.status_code)
    except ValueError:
        return str(reply.status_code)


def vpn_up(script: Path) -> None:
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise JoinError(f"the VPN tunnel did not come up: {done.stderr.strip() or done.stdout}")


def links_down() -> None:
    """The VPN's tunnel (wireguard-go ends with it) and the pod network's links."""
    if shutil.which("ip") is not None:
        for link in (vpn.INTERFACE, *NODE_LINKS):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


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
    """Remove what `join` wrote and what the kubelet made of it, the VPN's
    tunnel and key and the pod network's links too; the files gone."""
    links_down()
    gone = []
    for path in (settings.ca_file, settings.bootstrap_kubeconfig, settings.kubeconfig,
                 settings.config_file, SYSTEMD_UNITS / kubelet.UNIT_NAME,
                 SYSTEMD_UNITS / VPN_UNIT, *vpn_files(settings)):  # fmt: skip
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
    info = cluster_vpn(found, request.token)
    if info is None and request.require_vpn:
        raise JoinError("the cluster has no VPN: 'oneinfra cluster enable-vpn' it, or join without")
    contents = {}
    if info is not None:
        check_vpn_tools()
        peer = register_peer(found, request.token, settings.node_name, info,
                             request.peer_timeout)  # fmt: skip
        say(f"VPN peer {peer.address} of {info.network}, server {info.endpoint}")
        settings = dataclasses.replace(settings, node_ip=peer.address)
        key_file, certificate_file, script = vpn_files(settings)
        contents = {
            key_file: wireguard.encode(peer.private_key) + "\n",
            certificate_file: peer.certificate,
            script: vpn.tunnel_script(info, peer.address, key_file),
        }
    write_all({**files(found, request.token, config, settings), **contents})
    if info is not None:
        try:
            vpn_up(vpn_files(settings)[2])
        except JoinError:
            reset(settings)
            raise
        say(f"VPN tunnel {vpn.INTERFACE} up: the kubelet registers at {settings.node_ip}")
    if settings.cgroup_root is not None and settings.cgroup_v1:
        cgroups.make_root(settings.cgroup_root)
    command = kubelet.kubelet_command(request.kubelet, settings)
    if request.foreground:
        say(STARTING)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
    start_unit(command, settings, vpn_files(settings)[2] if info is not None else None)
    say(f"the kubelet runs as {kubelet.UNIT_NAME}: node {settings.node_name} joins as it starts")


def systemd_runs() -> bool:
    return Path("/run/systemd/system").is_dir()


def start_unit(command: list[str], settings: NodeSettings, vpn_script: Path | None) -> None:
    """The kubelet as a unit, after the VPN's when there is one (a boot
    brings the tunnel up first)."""
    if not systemd_runs():
        reset(settings)
        raise JoinError("systemd does not run here: give --foreground to run the kubelet in it")
    if vpn_script is not None:
        (SYSTEMD_UNITS / VPN_UNIT).write_text(kubelet.vpn_unit(vpn_script, vpn.INTERFACE))
    unit = SYSTEMD_UNITS / kubelet.UNIT_NAME
    unit.write_text(kubelet.systemd_unit(command, VPN_UNIT if vpn_script is not None else None))
    for args in (["daemon-reload"], ["enable", "--now", kubelet.UNIT_NAME]):
        done = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            reset(settings)
            raise JoinError(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
