"""Small pod specs for the plan and reconciler tests."""

from __future__ import annotations

from oneinfra import render as bp


def pod_spec(
    cluster: str, component: str, containers: tuple[str, ...], version: int = 1
) -> bp.PodSpec:
    """A pod of the given containers; `version` stands for its spec hash."""
    return bp.PodSpec(
        name=f"{cluster}-{component}",
        hypervisor="hv",
        directory=f"/data/{cluster}/{component}",
        labels={
            **bp.MANAGED,
            bp.LABEL_CLUSTER: cluster,
            bp.LABEL_CLUSTER_ID: cluster,
            bp.LABEL_COMPONENT: component,
            bp.LABEL_SPEC_HASH: f"v{version}",
            bp.LABEL_DIRECTORY: f"/data/{cluster}/{component}",
        },
        containers=[bp.ContainerSpec(n, f"registry.k8s.io/{n}:v1", [n], []) for n in containers],
        files=[bp.File("pki/ca.crt", b"ca")],
    )
