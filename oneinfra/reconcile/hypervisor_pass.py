"""One reconcile pass on one hypervisor: observe through CRI, plan, act.

Only oneinfra's sandboxes and containers are listed (label filter), so
nothing oneinfra did not create is ever seen, let alone touched. The
actions on one pod run in the plan's order; different pods are worked on
concurrently, a few at a time. Something already gone counts as done.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from functools import partial

import anyio
import msgspec

from .. import render as bp
from ..api.pb.runtime.v1 import api_pb2 as pb
from ..errors import CRIError, DataLost, NotFound, Unreachable
from ..render.etcd import starts_new
from ..render.labels import LABEL_ROLE, stop_grace
from ..runtime import realize
from ..runtime.cri import HypervisorClient
from . import plan as pl
from .plan import Key
from .restore import restore_member
from .rollout import disruptive

log = logging.getLogger("oneinfra.reconciler")

CONCURRENT_PODS = 4  # per hypervisor: enough to overlap image checks and starts


@dataclass
class PassResult:
    actions: list[pl.Action]
    # As listed before the actions: a pass that acted is followed by another
    # soon, which lists again (listing twice a pass cost a busy fleet 40%).
    observed: list[pl.ObservedPod]
    failures: dict[Key, str] = field(default_factory=dict)  # what could not be done, why
    touched: set[Key] = field(default_factory=set)  # the pods acted upon
    held: set[Key] = field(default_factory=set)  # changes waiting for their turn (rollout.py)
    lost: set[Key] = field(default_factory=set)  # pods whose etcd's data is gone (DataLost)


async def observe(
    client: HypervisorClient, selector: dict[str, str] = bp.MANAGED
) -> list[pl.ObservedPod]:
    sandboxes = await client.scan_sandboxes(selector)
    containers = await client.scan_containers(selector)
    by_sandbox: dict[str, list[pl.ObservedContainer]] = {}
    for container in containers:
        by_sandbox.setdefault(container.pod_sandbox_id, []).append(
            pl.ObservedContainer(
                id=container.id,
                role=container.labels.get(LABEL_ROLE, ""),
                running=container.state == pb.CONTAINER_RUNNING,
                files_hash=container.labels.get(bp.LABEL_FILES_HASH, ""),
                stop_grace=stop_grace(container.labels, bp.STOP_GRACE),
                live_hash=container.labels.get(bp.LABEL_LIVE_HASH, ""),
            )
        )
    return [
        pl.ObservedPod(
            sandbox_id=sandbox.id,
            labels=dict(sandbox.labels),
            ready=sandbox.state == pb.SANDBOX_READY,
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


async def remove_container(client: HypervisorClient, container_id: str, grace: int) -> None:
    try:
        await client.stop_container(container_id, grace_seconds=grace)
        await client.remove_container(container_id)
    except NotFound:
        pass


async def stop_running(client: HypervisorClient, action: pl.RemovePod) -> None:
    """Its running containers, each given its grace (an API server leaves
    the ingress's rotation before it stops serving), all at once: stopping
    the sandbox would kill them outright."""

    async def stop(container_id: str, grace: int) -> None:
        with contextlib.suppress(NotFound):
            await client.stop_container(container_id, grace_seconds=grace)

    await realize.all_at_once(*(partial(stop, c, g) for c, g in action.running.items()))


async def remove_pod(
    client: HypervisorClient, action: pl.RemovePod, labels: dict[str, str]
) -> None:
    await stop_running(client, action)
    if not action.directory:
        await remove_sandbox(client, action.sandbox_id)
        return
    # Stopped first (etcd writes there), the directory next, the sandbox last:
    # until it is gone, the next pass sees it and does this again.
    try:
        await client.stop_sandbox(action.sandbox_id)
    except NotFound:
        return
    await realize.remove_directory(client, action.directory, labels)
    await client.remove_sandbox(action.sandbox_id)


async def reload_container(client: HypervisorClient, action: pl.ReloadContainer) -> None:
    """Its files rewritten, and it told to read them; a reload that fails
    is a restart."""
    if action.write_files:
        await realize.write_files(client, action.sandbox_id, action.pod)
    spec = action.pod.container(action.container)
    if not spec.reload:  # it watches its files
        return
    try:
        reply = await client.exec_sync(action.container_id, spec.reload)
        if reply.exit_code == 0:
            return
        why = (reply.stderr or reply.stdout).decode(errors="replace").strip()[:200]
        log.warning("reloading %s failed (%s): restarting it", action.container, why)
    except CRIError as error:
        log.warning("reloading %s failed (%s): restarting it", action.container, error)
    await remove_container(client, action.container_id, spec.stop_grace)
    await realize.start_container(client, action.sandbox_id, action.pod, action.container)


async def refuse_an_empty_start(client: HypervisorClient, action: pl.RestartContainer) -> None:
    """An etcd that ran and exited starts again only on its data: on an
    empty directory it would crash-loop beside members that have its log,
    or, alone, start an empty cluster in place of the lost one."""
    if not await realize.etcd_data_present(client, action.sandbox_id, action.pod):
        raise DataLost(
            client.endpoint,
            "etcd ran here and its data directory has no member/ any more: its data is lost. "
            "It is not started empty; a member of three or more is replaced by the daemon, "
            "a cluster of fewer is restored from a backup",
        )


async def act(client: HypervisorClient, action: pl.Action, labels: dict[str, str]) -> None:
    match action:
        case pl.RemovePod():
            await remove_pod(client, action, labels)
        case pl.CreatePod():
            prepare = restore_member if action.pod.restore is not None else None
            await realize.run_pod(
                client, action.pod, action.start, prepare, write=not action.files_written
            )
        case pl.RemoveContainer():
            await remove_container(client, action.container_id, action.grace)
        case pl.ReloadContainer():
            await reload_container(client, action)
        case pl.RestartContainer():
            if action.container == "etcd" and action.pod.restore is not None:
                await restore_member(client, action.sandbox_id, action.pod)  # made once
            elif (
                action.container == "etcd"
                and action.after_exit
                and starts_new(action.pod.container("etcd"))
            ):
                await refuse_an_empty_start(client, action)
            if action.write_files:
                await realize.write_files(client, action.sandbox_id, action.pod)
            spec = action.pod.container(action.container)
            for old in action.old_container_ids:
                await remove_container(client, old, spec.stop_grace)
            await realize.start_container(client, action.sandbox_id, action.pod, action.container)


def describe(action: pl.Action) -> str:
    """What an action does, for the log line that says it was done."""
    match action:
        case pl.CreatePod():
            return "created the pod, started " + (", ".join(action.start) or "nothing yet")
        case pl.RemovePod():
            return f"removed the pod ({action.reason})"
        case pl.RemoveContainer():
            return f"removed a container ({action.reason})"
        case pl.ReloadContainer():
            return f"reloaded {action.container}'s files"
        case pl.RestartContainer():
            return ("restarted " if action.old_container_ids else "started ") + action.container


Reloaded = dict[str, tuple[str, str]]  # container id -> the (files, live files) hashes it has


def with_reloads(observed: list[pl.ObservedPod], reloaded: Reloaded) -> list[pl.ObservedPod]:
    """The pods as they run: a reloaded container reads the files it was
    reloaded with. What is no longer there is forgotten."""
    seen = {c.id for pod in observed for c in pod.containers}
    for gone in set(reloaded) - seen:
        del reloaded[gone]
    if not reloaded:
        return observed
    return [
        msgspec.structs.replace(
            pod,
            containers=[
                msgspec.structs.replace(
                    c, files_hash=reloaded[c.id][0], live_hash=reloaded[c.id][1]
                )
                if c.id in reloaded
                else c
                for c in pod.containers
            ],
        )
        for pod in observed
    ]


async def with_files_written(
    client: HypervisorClient, actions: list[pl.Action], selector: dict[str, str]
) -> list[pl.Action]:
    """The pass's actions, the files of its pods to create written first by
    one helper when there are several (a thousand clusters created at once
    wrote them in a container per pod: four CRI calls each). When that
    fails, each pod writes its own, and fails on its own."""
    pods = [action.pod for action in actions if isinstance(action, pl.CreatePod)]
    if len(pods) < 2:
        return actions
    try:
        await realize.write_many(client, pods, dict(selector))
    except Unreachable:
        raise  # ends the pass, as any call's would
    except (CRIError, TimeoutError, ValueError) as error:
        log.info("%s: writing %d pods' files at once: %s", client.endpoint, len(pods), error)
        return actions
    return [
        msgspec.structs.replace(action, files_written=True)
        if isinstance(action, pl.CreatePod)
        else action
        for action in actions
    ]


def action_key(action: pl.Action, keys: dict[str, Key]) -> Key:
    return pl.key_of(action.pod) if isinstance(action, pl.CreatePod) else keys[action.sandbox_id]


def group_by_pod(
    actions: Sequence[pl.Action], observed: Sequence[pl.ObservedPod]
) -> dict[Key, list[pl.Action]]:
    """The actions of each pod, in plan order."""
    keys = {pod.sandbox_id: pod.key for pod in observed}
    groups: dict[Key, list[pl.Action]] = {}
    for action in actions:
        groups.setdefault(action_key(action, keys), []).append(action)
    return groups


Protect = Callable[[list[pl.ObservedPod]], Container[Key]]
Hold = Callable[[set[Key]], set[Key]]  # pods a change would disrupt -> those to wait


async def reconcile(
    client: HypervisorClient,
    desired: Sequence[bp.PodSpec],
    protect: Protect | None = None,
    concurrency: int = CONCURRENT_PODS,
    selector: dict[str, str] = bp.MANAGED,
    api_ready: Container[str] | None = None,
    hold: Hold | None = None,
    reloaded: Reloaded | None = None,
) -> PassResult:
    """One pass. A pod whose action the runtime refuses is reported in
    `failures` and the others go on; an unreachable hypervisor ends the pass
    (Unreachable is raised). `protect` names the pods, among those observed,
    that must stay although no longer desired; `hold`, among the pods the
    plan would disrupt, those whose turn has not come. `reloaded`: the
    files each container was reloaded with (by id), kept by the caller
    from pass to pass, since a container's labels cannot change."""
    before = await observe(client, selector)
    if reloaded is not None:
        before = with_reloads(before, reloaded)
    if api_ready is None:  # no one is asking: every cluster counts as answering
        api_ready = {pl.key_of(pod)[0] for pod in desired}
    actions = pl.plan(desired, before, protect(before) if protect else frozenset(), api_ready)
    held = hold(disruptive(actions, before)) if hold and actions else set()
    if held:
        keys = {pod.sandbox_id: pod.key for pod in before}
        actions = [a for a in actions if action_key(a, keys) not in held]
    if not actions:
        return PassResult(actions, before, held=held)
    actions = await with_files_written(client, actions, selector)
    labels = {pod.sandbox_id: pod.labels for pod in before}
    failures: dict[Key, str] = {}
    lost: set[Key] = set()
    limiter = anyio.CapacityLimiter(concurrency)

    async def work(key: Key, group: list[pl.Action]) -> None:
        async with limiter:
            written = False  # one pod's files, once a pass
            for action in group:
                if isinstance(action, pl.RestartContainer | pl.ReloadContainer) and (
                    action.write_files
                ):
                    action = msgspec.structs.replace(action, write_files=not written)
                    written = True
                try:
                    pod_labels = labels.get(getattr(action, "sandbox_id", ""), {})
                    await act(client, action, pod_labels)
                    if isinstance(action, pl.ReloadContainer) and reloaded is not None:
                        spec = action.pod.container(action.container)
                        reloaded[action.container_id] = (
                            action.pod.files_hash(spec),
                            action.pod.live_hash(spec),
                        )
                except Unreachable:
                    raise
                except DataLost as error:
                    failures[key] = str(error)
                    lost.add(key)
                    return
                except (CRIError, TimeoutError, ValueError) as error:
                    failures[key] = str(error) or type(error).__name__
                    return

    groups = group_by_pod(actions, before)
    try:
        async with anyio.create_task_group() as tasks:
            for key, group in groups.items():
                tasks.start_soon(work, key, group)
    except BaseExceptionGroup as error:
        raise realize.first_error(error) from None
    return PassResult(actions, before, failures, set(groups), held, lost)
