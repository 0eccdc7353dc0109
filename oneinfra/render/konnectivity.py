"""The control plane's way into its cluster: konnectivity, Kubernetes' own
API server network proxy (sigs.k8s.io/apiserver-network-proxy), as
Kamaji, k0smotron and HyperShift use it.

The API servers run on hypervisors' host networks, next to other clusters'
whose pod CIDRs may be the same, so no route on a hypervisor could lead
into one cluster's pod network. Instead, every API server sends what goes
into its cluster (kubelets for logs, exec, attach and port-forward;
webhooks and aggregated APIs at their pods; its proxy to pods and
Services) over a local socket to a proxy server beside it, and an agent on
every node dials out to those servers through the cluster's ingress and
carries the connections from there. Nothing on the way depends on the
hypervisor's routes, and the agents dial out, so a worker behind NAT is
reached just the same.

Agents prove who they are with a ServiceAccount token for the servers'
audience, which the servers check with a TokenReview; each agent tells its
node's address, so that a connection to a kubelet is carried by that
node's own agent.
"""

from __future__ import annotations

import yaml

from ..model.state import KONNECTIVITY_PORTS, Cluster
from .pods import KUBECONFIGS, PKI, ContainerSpec, File, Mount

VERSION = "v0.36.0"
SERVER_IMAGE = f"registry.k8s.io/kas-network-proxy/proxy-server:{VERSION}"
AGENT_IMAGE = f"registry.k8s.io/kas-network-proxy/proxy-agent:{VERSION}"
AGENT = "konnectivity-agent"  # its DaemonSet and ServiceAccount, in kube-system
AUDIENCE = "system:konnectivity-server"
INGRESS_PORT = "konnectivity"  # the ingress's port for agents
DIRECTORY = "konnectivity"  # in the component's directory: the socket and egress config
INSIDE = f"{KUBECONFIGS}/konnectivity-server"  # that directory, in the containers
SOCKET = f"{INSIDE}/konnectivity-server.socket"
EGRESS_CONFIG = f"{INSIDE}/egress-selector.yaml"
TOKEN_DIRECTORY = "/var/run/secrets/tokens"
TOKEN_FILE = f"{AGENT}-token"
TOKEN = f"{TOKEN_DIRECTORY}/{TOKEN_FILE}"


def tunneled(cluster: Cluster) -> bool:
    """Whether the cluster's components were placed with konnectivity's
    ports: those placed before oneinfra had them go on reaching their
    cluster directly."""
    ingress = cluster.ingress()
    return (
        ingress is not None
        and INGRESS_PORT in ingress.ports
        and all(all(p in c.ports for p in KONNECTIVITY_PORTS) for c in cluster.control_planes())
    )


def egress_selector() -> bytes:
    """The API server's egress configuration: everything bound for the
    cluster goes through the proxy server's socket; its own etcd and
    control plane are reached directly."""
    configuration = {
        "apiVersion": "apiserver.k8s.io/v1beta1",
        "kind": "EgressSelectorConfiguration",
        "egressSelections": [
            {
                "name": "cluster",
                "connection": {
                    "proxyProtocol": "GRPC",
                    "transport": {"uds": {"udsName": SOCKET}},
                },
            }
        ],
    }
    return yaml.safe_dump(configuration, sort_keys=False).encode()


def mount(directory: str) -> Mount:
    """The socket's directory, shared by the API server and the proxy server."""
    return Mount(INSIDE, f"{directory}/{DIRECTORY}", readonly=False)


def files() -> list[File]:
    return [File(f"{DIRECTORY}/egress-selector.yaml", egress_selector())]


def server_container(
    image: str, ports: dict[str, int], replicas: int, kubeconfig: str, mounts: list[Mount]
) -> ContainerSpec:
    """The proxy server beside an API server. It checks agents' tokens with
    the controller manager's kubeconfig (that identity may create
    TokenReviews); it serves agents with the API server's certificate,
    whose names include the ingress's address the agents dial."""
    return ContainerSpec(
        name="konnectivity-server",
        image=image,
        command=[
            "/proxy-server",
            "--logtostderr=true",
            "--mode=grpc",
            f"--uds-name={SOCKET}",
            "--delete-existing-uds-file=true",
            "--server-port=0",
            f"--agent-port={ports['konnectivity']}",
            f"--admin-port={ports['konnectivity-admin']}",
            "--admin-bind-address=127.0.0.1",
            f"--health-port={ports['konnectivity-health']}",
            "--health-bind-address=127.0.0.1",
            f"--cluster-cert={PKI}/apiserver.crt",
            f"--cluster-key={PKI}/apiserver.key",
            "--agent-namespace=kube-system",
            f"--agent-service-account={AGENT}",
            f"--authentication-audience={AUDIENCE}",
            f"--kubeconfig={kubeconfig}",
            # A kubelet is reached through its own node's agent; anything
            # else (a pod's address) through any agent.
            "--proxy-strategies=destHost,default",
            "--keepalive-time=30s",
        ],
        mounts=mounts,
        # Agents connect through the ingress until they hold a tunnel to
        # every replica's server: they must know how many there are. A
        # startup argument, like the API server's etcd servers: a scale
        # reissues the API server's certificate, which this server reads
        # too, so it starts again with the new count.
        startup_args=[f"--server-count={replicas}"],
        after_api=True,  # it checks agents' tokens with the API
    )


def agent_command(server_host: str, server_port: int, ca_file: str) -> list[str]:
    """An agent's command: it dials the servers at the ingress and trusts
    the cluster CA (the servers present the API server's certificate)."""
    return [
        "/proxy-agent",
        "--logtostderr=true",
        f"--ca-cert={ca_file}",
        f"--proxy-server-host={server_host}",
        f"--proxy-server-port={server_port}",
        f"--service-account-token-path={TOKEN}",
        "--agent-identifiers=ipv4=$(HOST_IP)",  # kubelets at this address: this agent
        # Dial again (every second at first) only while holding fewer
        # tunnels than the servers count: a scale restarts every server with
        # the new count, and their agents learn it as they reconnect. (To
        # look for new servers forever would cost a TLS handshake and a
        # TokenReview per agent per interval.)
        "--sync-interval=1s",
        "--sync-interval-cap=10s",
        "--keepalive-time=30s",
        "--admin-bind-address=127.0.0.1",
        "--health-server-host=127.0.0.1",
    ]
