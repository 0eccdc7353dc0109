"""The ingress of a cluster: haproxy, TCP passthrough to every API server,
with TLS-level health checks."""

from __future__ import annotations

from ..model.state import Cluster, Component, Hypervisor
from . import konnectivity
from .pods import DATA_DIR, ContainerSpec, File, Mount, PodSpec, component_directory, host, pod

HAPROXY_IMAGE = "docker.io/library/haproxy:2.6"
CHECK_EVERY = 1  # seconds between health checks of a server that is up
FALL = 2  # failed checks that take it out of rotation
DROPPED_WITHIN = CHECK_EVERY * FALL + 1  # seconds, a check's own time included


def haproxy_config(
    cluster: Cluster, ingress: Component, hypervisors: dict[str, Hypervisor]
) -> bytes:
    addresses = {
        c.name: f"{host(hypervisors[c.hypervisor].ip_address)}:{c.ports['apiserver']}"
        for c in cluster.control_planes()
    }
    backends = [
        f"    server {name} {address} check check-ssl verify none"
        for name, address in addresses.items()
    ]
    # When no API server passes its check (one replica, its etcd restarting
    # or its API server told to stop but still serving), each is tried
    # anyway rather than the client refused: it may well answer.
    anyway = [f"    server {name}-anyway {address} backup" for name, address in addresses.items()]
    return "\n".join(
        [
            "global",
            "    maxconn 4096",
            # A reload leaves the connections it had to the worker that held
            # them (watches, tunnels): at most this long.
            "    hard-stop-after 30m",
            "defaults",
            "    mode tcp",
            # A connection refused by an API server that just died is retried
            # on another one; health checks notice it within two seconds.
            "    retries 3",
            "    option redispatch",
            # A server down is looked at often, so that it serves soon after it is ready.
            f"    default-server inter {CHECK_EVERY}s downinter 200ms fall {FALL} rise 1",
            "    timeout connect 5s",
            "    timeout client 1h",
            "    timeout server 1h",
            "frontend apiserver",
            f"    bind :{ingress.ports['apiserver']}",
            "    default_backend apiservers",
            "backend apiservers",
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            "    balance roundrobin",
            "    option allbackups",
            *backends,
            *anyway,
            *tunnel_lines(cluster, ingress, hypervisors),
            "",
        ]
    ).encode()


def tunnel_lines(
    cluster: Cluster, ingress: Component, hypervisors: dict[str, Hypervisor]
) -> list[str]:
    """konnectivity's agents dial in here (render/konnectivity.py); each
    connects again until it holds a tunnel to every replica's server."""
    if not konnectivity.tunneled(cluster):
        return []
    return [
        "frontend konnectivity",
        f"    bind :{ingress.ports[konnectivity.INGRESS_PORT]}",
        "    default_backend konnectivity",
        "backend konnectivity",
        "    balance roundrobin",
        *(
            f"    server {c.name} {host(hypervisors[c.hypervisor].ip_address)}:"
            f"{c.ports['konnectivity']} check"
            for c in cluster.control_planes()
        ),
    ]


def ingress(
    cluster: Cluster,
    component: Component,
    hypervisors: dict[str, Hypervisor],
    data_dir: str = DATA_DIR,
    haproxy_image: str = HAPROXY_IMAGE,
) -> PodSpec:
    directory = component_directory(cluster, component, data_dir)
    files = [File("haproxy.cfg", haproxy_config(cluster, component, hypervisors))]
    container = ContainerSpec(
        name="haproxy",
        image=haproxy_image,
        # Master and worker: a new configuration (a scale changes the API
        # servers) is read by a new worker, while the old one serves the
        # connections it has until they end; nothing is cut, nothing refused.
        command=["/usr/sbin/haproxy", "-W", "-f", "/usr/local/etc/haproxy/haproxy.cfg"],
        mounts=[Mount("/usr/local/etc/haproxy", directory)],
        reload=["sh", "-c", "kill -USR2 1"],
    )
    return pod(cluster, component, component.hypervisor, directory, [container], files)
