"""One reconcile pass on one hypervisor: observe through CRI, plan, act.

Only oneinfra's sandboxes and containers are listed (label filter), so
nothing oneinfra did not create is ever seen, let alone touched. Actions
run in the plan's order; something already gone counts as done.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import blueprints as bp
from . import plan as pl
from . import realize
from .api.runtime import v1 as cri
from .cri import HypervisorClient, NotFound


async def observe(client: HypervisorClient) -> list[pl.ObservedPod]:
    sandboxes = await client.list_sandboxes(bp.MANAGED)
    containers = await client.list_containers(bp.MANAGED)
    by_sandbox: dict[str, list[pl.ObservedContainer]] = {}
    for container in containers:
        by_sandbox.setdefault(container.pod_sandbox_id, []).append(
            pl.ObservedContainer(
                id=container.id,
                role=container.labels.get(realize.LABEL_ROLE, ""),
                running=container.state == cri.ContainerState.CONTAINER_RUNNING,
            )
        )
    return [
        pl.ObservedPod(
            sandbox_id=sandbox.id,
            labels=dict(sandbox.labels),
            ready=sandbox.state == cri.PodSandboxState.SANDBOX_READY,
            containers=by_sandbox.get(sandbox.id, []),
        )
        for sandbox in sandboxes
    ]


async def remove_sandbox(client: HypervisorClient, sandbox_id: str) -> None:
    try:
        await client.stop_sandbox(sandbox_id)
    except NotFound:
        return
    await client.remove_sandbox(sandbox_id)


async def remove_container(client: HypervisorClient, container_id: str) -> None:
    try:
        await client.stop_container(container_id, grace_seconds=5)
        await client.remove_container(container_id)
    except NotFound:
        pass


async def act(client: HypervisorClient, action: pl.Action) -> None:
    match action:
        case pl.RemovePod():
            await remove_sandbox(client, action.sandbox_id)
        case pl.CreatePod():
            await realize.write_files(client, action.pod)
            await realize.run_pod(client, action.pod)
        case pl.RemoveContainer():
            await remove_container(client, action.container_id)
        case pl.RestartContainer():
            for old in action.old_container_ids:
                await remove_container(client, old)
            await realize.start_container(client, action.sandbox_id, action.pod, action.container)


async def reconcile(client: HypervisorClient, desired: Sequence[bp.PodSpec]) -> list[pl.Action]:
    """One pass; returns what it did (nothing, on a converged hypervisor)."""
    actions = pl.plan(desired, await observe(client))
    for action in actions:
        await act(client, action)
    return actions
