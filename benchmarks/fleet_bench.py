"""Fleet scale: the real daemon (socket API, SQLite log, reconciler) in a
child process, against 100 fake CRI hypervisors served by this process on
Unix sockets, with a per-call latency (default 2 ms) and containers that
start at once. At each fleet size (clusters of 3 replicas):

- converge: from the last `cluster create` accepted to every pod running
  the containers that can run without the API (etcd, kube-apiserver,
  haproxy: the fakes' API servers never answer /readyz, so the controller
  manager and scheduler, which wait for it, are not counted);
- `cluster show` p99 while it converges;
- no-op passes over the converged fleet: the CRI calls of one resync period
  (--resync 5 here), and each hypervisor's pass (first to last list call);
- one cluster changed (scaled 3 -> 5): time until its new replicas run, and
  the CRI calls the whole fleet received meanwhile;
- the daemon's peak memory (VmHWM), in all and per cluster;
- the renewal check (reconcile/renewals.py) over the converged fleet's
  state, folded here from the daemon's own log: what one look costs the
  daemon's loop, every 10 s at most (it makes no CRI call: the no-op
  pass's calls above are measured with it running);
- the whole fleet passed over at once, cold: the daemon killed (SIGKILL) and
  started again, until every hypervisor has been listed, and the CRI calls.

    .venv/bin/python benchmarks/fleet_bench.py [--clusters 100 300 1000] [--latency 0.002]
        [--only all-at-once] [--profile DIR]

--profile records the daemon of the all-at-once phase with py-spy (a
speedscope file per fleet size, in DIR), and prints the functions that took
the most of its main thread's samples.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import anyio.abc
import httpx
from anyio.abc import Process
from grpclib.client import Channel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import time_to_ready
from eventstore import SQLiteEventStore
from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from oneinfra.api.pb.oneinfra.v1.fleet_grpc import FleetStub
from oneinfra.api.runtime import v1 as cri
from oneinfra.daemon.service import fold_from
from oneinfra.model.decider.certificates import leaf_ids
from oneinfra.model.state import FleetState
from oneinfra.reconcile.renewals import due_commands, next_renewal
from tests.fakecri import FakeEtcd, FakeRuntime, serve_fake
from tests.oneinfra.daemon import free_port

PUBLIC, PRIVATE = 10, 90
SCRAPES = 20  # of /metrics, at each fleet size
RESYNC = 5.0  # the daemon's --resync here: one period's calls are a no-op pass
EARLY = {"etcd", "kube-apiserver", "haproxy"}  # run before the API answers
LISTS = {"list_pod_sandbox", "list_containers"}


def emit(metric: str, value: float, unit: str, **extra: object) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit, **extra}),
          flush=True)  # fmt: skip


def running_early(fakes: dict[str, FakeRuntime]) -> Counter[str]:
    """Running containers that can run without the API, by cluster name."""
    counts: Counter[str] = Counter()
    for fake in fakes.values():
        for c in fake.containers.values():
            role = c.config.labels.get("oneinfra.io/role", "")
            if role in EARLY and c.state == cri.ContainerState.CONTAINER_RUNNING:
                counts[c.config.labels.get("oneinfra.io/cluster", "")] += 1
    return counts


def calls(fakes: dict[str, FakeRuntime]) -> Counter[str]:
    total: Counter[str] = Counter()
    for fake in fakes.values():
        total.update(fake.calls)
    return total


def reset_calls(fakes: dict[str, FakeRuntime]) -> None:
    for fake in fakes.values():
        fake.calls.clear()


def peak_memory_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int | None = None) -> float:
    """User and system CPU time a process has used (this one by default)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_daemon(root: Path, *extra: str) -> subprocess.Popen[bytes]:
    return time_to_ready.start_daemon(root, "--resync", str(RESYNC), *extra)


async def wait_for(  # type: ignore[no-untyped-def]
    check, seconds: float, what: str, every: float = 0.05
) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"not within {seconds} s: {what}")
        await anyio.sleep(every)
    return time.monotonic() - started


async def renewal_look(root: Path) -> tuple[float, int]:
    """Seconds one look of the renewal task takes over the fleet's state
    (the median of 20), and the leaves it looks at."""
    store = await SQLiteEventStore.open(root / "state" / "events.db", read_only=True)
    try:
        state = FleetState()
        await fold_from(store, state, 1)
    finally:
        await store.close()
    now = int(time.time())
    times = []
    for _ in range(20):
        began = time.perf_counter()
        due_commands(state, now)  # due renewals and due key retirements, as the daemon looks
        next_renewal(state)
        times.append(time.perf_counter() - began)
    leaves = sum(len(leaf_ids(c)) for c in state.clusters.values())
    return statistics.median(times), leaves


def p99(values: list[float]) -> float:
    """Of sorted values."""
    return values[int(len(values) * 0.99) - 1]


def all_running(fakes: dict[str, FakeRuntime], clusters: int) -> bool:
    """Every cluster runs its 7 early containers (etcd and kube-apiserver x3,
    haproxy)."""
    counts = running_early(fakes)
    return len(counts) == clusters and all(v == 3 * 2 + 1 for v in counts.values())


async def serve_fakes(stack: AsyncExitStack, root: Path, latency: float) -> dict[str, FakeRuntime]:
    """The 100 fake hypervisors, by name, sharing one fake etcd."""
    etcd = FakeEtcd(promote_refusals=0)
    names = [f"pub{i}" for i in range(PUBLIC)] + [f"priv{i}" for i in range(PRIVATE)]
    return {
        name: await stack.enter_async_context(
            serve_fake(root / f"{name}.sock", FakeRuntime(latency=latency, etcd=etcd))
        )
        for name in names
    }


async def open_client(root: Path, *args: str) -> tuple[Process, TextLines]:
    """The client (see `client`) as a process of its own: in this one, its
    replies would wait behind the fakes."""
    process = await anyio.open_process(
        [sys.executable, __file__, "--client", str(root / "oneinfra.sock"), *args]
    )
    assert process.stdout is not None
    return process, TextLines(process.stdout)


async def shows_until_converged(
    client: Process, replies: TextLines, fakes: dict[str, FakeRuntime], clusters: int
) -> tuple[float, list[float]]:
    """Waits for every cluster to run, then stops the client: the time it
    took, and the show latencies (sorted)."""
    assert client.stdin is not None
    try:
        # Each look goes through every container of the fleet, in the fakes'
        # process: every 0.1 s (at 1,000 clusters, every 0.05 s took 7% of it).
        converge = await wait_for(lambda: all_running(fakes, clusters), 600, "convergence", 0.1)
        await client.stdin.send(b"stop\n")
        shows: list[float] = json.loads(await replies.next())
    finally:
        if client.returncode is None:
            client.kill()
        await client.wait()
    return converge, shows


async def noop_period(
    fakes: dict[str, FakeRuntime], latency: float
) -> tuple[list[float], Counter[str]]:
    """One resync period over a converged fleet: each hypervisor's pass
    (first list call to last, sorted), and the CRI calls made."""
    await anyio.sleep(1.0)
    reset_calls(fakes)
    for fake in fakes.values():
        fake.timeline = []
    await anyio.sleep(RESYNC + 0.5)
    made = calls(fakes)
    passes = []
    for fake in fakes.values():
        assert fake.timeline is not None
        lists = [t for t, m in fake.timeline if m in LISTS]
        if len(lists) >= 2:
            passes.append(lists[1] - lists[0] + latency)
        fake.timeline = None
    return sorted(passes), made


async def scrapes(port: int, times: int) -> tuple[list[float], int, int]:
    """`times` scrapes of /metrics, one after another: their seconds, and
    the last one's size in bytes and samples."""
    took, text = [], ""
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(times):
            began = time.perf_counter()
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            took.append(time.perf_counter() - began)
    samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return sorted(took), len(text.encode()), samples


async def run_size(clusters: int, latency: float, root: Path) -> None:
    async with AsyncExitStack() as stack:
        fakes = await serve_fakes(stack, root, latency)
        names = list(fakes)
        daemon = await anyio.to_thread.run_sync(start_daemon, root)
        channel = Channel(path=str(root / "oneinfra.sock"))
        stub = FleetStub(channel)
        try:
            await register(root, names)
            # Creates, then shows one of those created every 10 ms.
            client, replies = await open_client(root, "--clusters", str(clusters))
            accepted_after = float(await replies.next())
            converge, shows = await shows_until_converged(client, replies, fakes, clusters)
            tag = {"clusters": clusters, "hypervisors": len(names), "latency_s": latency}
            emit("create_all_accepted", accepted_after, "s", **tag)
            emit("converge_after_last_create", converge, "s", **tag)
            median_ms = round(statistics.median(shows) * 1000, 3)
            emit("show_p99_while_converging", p99(shows) * 1000, "ms",
                 samples=len(shows), median_ms=median_ms, **tag)  # fmt: skip

            # No-op passes over the converged fleet: one resync period's calls,
            # and each hypervisor's pass, from its first list call to its last.
            passes, made = await noop_period(fakes, latency)
            emit("noop_pass_per_hypervisor_p99", p99(passes) * 1000,
                 "ms", passes=len(passes), **tag)  # fmt: skip
            emit("noop_resync_cri_calls", sum(made.values()), "calls",
                 lists=sum(made[m] for m in LISTS), other=sum(v for m, v in made.items()
                                                             if m not in LISTS), **tag)  # fmt: skip
            # A pass starts with its sandbox list: the window holds whole passes
            # and, for hypervisors whose period began early in it, a second one.
            emit("noop_cri_calls_per_pass", sum(made.values()) / made["list_pod_sandbox"],
                 "calls", passes=made["list_pod_sandbox"], **tag)  # fmt: skip

            # One cluster changed: c0 scaled 3 -> 5.
            reset_calls(fakes)
            began = time.monotonic()
            await stub.ScaleCluster(api.ScaleClusterRequest(name="c0", control_plane_replicas=5))
            await wait_for(lambda: running_early(fakes)["c0"] == 5 * 2 + 1, 120, "c0 at 5")
            elapsed = time.monotonic() - began
            made = calls(fakes)
            emit("one_cluster_change_converge", elapsed, "s", **tag)
            emit("one_cluster_change_cri_calls", sum(made.values()), "calls",
                 lists=sum(made[m] for m in LISTS), **tag)  # fmt: skip

            look, leaves = await renewal_look(root)
            emit("renewal_look", look * 1000, "ms", leaves=leaves, **tag)

            peak = peak_memory_kib(daemon.pid)
            emit("daemon_peak_memory", peak / 1024, "MiB", **tag)
            emit("daemon_peak_memory_per_cluster", peak / clusters, "KiB", **tag)

            # The whole converged fleet passed over at once: the daemon killed
            # (SIGKILL) and started again, every hypervisor's worker starts
            # with a pass. Cold: nothing rendered or read yet.
            daemon.kill()
            await anyio.to_thread.run_sync(daemon.wait)
            reset_calls(fakes)
            for fake in fakes.values():
                fake.timeline = []
            spawned = time.monotonic()
            daemon = await anyio.to_thread.run_sync(start_daemon, root)
            began = time.monotonic()

            def each_passed() -> bool:
                return all(
                    sum(m in LISTS for _, m in fake.timeline or []) >= 2 for fake in fakes.values()
                )

            swept = await wait_for(each_passed, 120, "a pass on every hypervisor")
            last_list = max(
                t for fake in fakes.values() for t, m in fake.timeline or [] if m in LISTS
            )
            await anyio.sleep(1.0)
            made = calls(fakes)
            for fake in fakes.values():
                fake.timeline = None
            emit("restart_to_serving", began - spawned, "s", **tag)
            emit("restart_fleet_pass", last_list - began, "s", polled=round(swept, 3),
                 **tag)  # fmt: skip
            emit("restart_fleet_pass_cri_calls", sum(made.values()), "calls",
                 lists=sum(made[m] for m in LISTS),
                 other={m: v for m, v in made.items() if m not in LISTS and v}, **tag)  # fmt: skip

            # Metrics on: the daemon started again with --metrics-address, its
            # no-op period beside one of the daemon just restarted without
            # them (a daemon just started passes slower for a while), and
            # scrapes: their time and size.
            off_passes, _ = await noop_period(fakes, latency)
            daemon.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))
            port = free_port()
            daemon = await anyio.to_thread.run_sync(
                start_daemon, root, "--metrics-address", f"127.0.0.1:{port}"
            )
            await wait_for(each_passed_again(fakes), 120, "a pass on every hypervisor")
            on_passes, on_made = await noop_period(fakes, latency)
            emit("noop_pass_per_hypervisor_p99_metrics_on", p99(on_passes) * 1000, "ms",
                 passes=len(on_passes), off_ms=round(p99(off_passes) * 1000, 3),
                 **tag)  # fmt: skip
            took, size, samples = await scrapes(port, SCRAPES)
            emit("metrics_scrape_median", statistics.median(took) * 1000, "ms",
                 max_ms=round(took[-1] * 1000, 3), bytes=size, samples=samples,
                 scrapes=len(took), **tag)  # fmt: skip
            emit("noop_cri_calls_per_pass_metrics_on",
                 sum(on_made.values()) / on_made["list_pod_sandbox"], "calls", **tag)  # fmt: skip
        finally:
            channel.close()
            daemon.send_signal(signal.SIGTERM)

            await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))


def each_passed_again(fakes: dict[str, FakeRuntime]) -> Callable[[], bool]:
    """Until every hypervisor has had a pass (two list calls) from now on."""
    for fake in fakes.values():
        fake.timeline = []

    def passed() -> bool:
        done = all(sum(m in LISTS for _, m in fake.timeline or []) >= 2 for fake in fakes.values())
        if done:
            for fake in fakes.values():
                fake.timeline = None
        return done

    return passed


async def run_all_at_once(
    clusters: int, latency: float, root: Path, profile: Path | None = None
) -> None:
    """The whole fleet converged from empty hypervisors at once: the clusters
    created with the reconciler off, then the daemon started with it, as after
    a restore onto new hypervisors. `cluster show` is timed meanwhile."""
    async with AsyncExitStack() as stack:
        fakes = await serve_fakes(stack, root, latency)
        names = list(fakes)
        daemon = await anyio.to_thread.run_sync(start_daemon, root, "--no-reconcile")
        try:
            await register(root, names)
            client, replies = await open_client(root, "--clusters", str(clusters))
            await replies.next()
            client.kill()
            await client.wait()
            daemon.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))
            spawned = time.monotonic()
            daemon = await anyio.to_thread.run_sync(start_daemon, root)
            began = time.monotonic()
            spy = profile and profiler(daemon.pid, profile / f"all-at-once-{clusters}.json")
            shower, shown = await open_client(
                root, "--clusters", "0", "--show", f"c{clusters // 2}"
            )
            await shown.next()  # no creates: at once
            cpu_before = cpu_seconds(daemon.pid), cpu_seconds()
            reset_calls(fakes)
            converge, shows = await shows_until_converged(shower, shown, fakes, clusters)
            daemon_cpu = cpu_seconds(daemon.pid) - cpu_before[0]
            fakes_cpu = cpu_seconds() - cpu_before[1]
            made = calls(fakes)
            if spy:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
                await anyio.to_thread.run_sync(lambda: spy.wait(timeout=120))
            tag = {"clusters": clusters, "hypervisors": len(names), "latency_s": latency}
            emit("all_at_once_converge_from_empty", converge, "s",
                 to_serving=round(began - spawned, 3), **tag)  # fmt: skip
            # On 2 cores, the daemon and the fakes' process share the machine:
            # what each used says which one the time was spent waiting for.
            emit("all_at_once_daemon_cpu", daemon_cpu, "s", **tag)
            emit("all_at_once_fakes_cpu", fakes_cpu, "s", **tag)
            emit("all_at_once_cri_calls", sum(made.values()), "calls",
                 by_method=dict(made.most_common()), **tag)  # fmt: skip
            emit("all_at_once_show_p99", p99(shows) * 1000, "ms",
                 samples=len(shows), median_ms=round(statistics.median(shows) * 1000, 3),
                 **tag)  # fmt: skip
        finally:
            daemon.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(lambda: daemon.wait(timeout=60))


def profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the daemon's threads (100 a second, idle samples left
    out) into a speedscope file, until interrupted."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(spy), "record", "--pid", str(pid), "--format", "speedscope", "--rate", "100",
         "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def register(root: Path, names: list[str]) -> None:
    channel = Channel(path=str(root / "oneinfra.sock"))
    stub = FleetStub(channel)
    try:
        for i, name in enumerate(names):
            await stub.RegisterHypervisor(api.RegisterHypervisorRequest(
                name=name, endpoint=f"unix://{root}/{name}.sock",
                role="public" if name.startswith("pub") else "private",
                ip_address=f"127.1.{i // 250}.{i % 250 + 1}", data_dir="/data",
            ))  # fmt: skip
    finally:
        channel.close()


class TextLines:
    """Lines from a byte stream."""

    def __init__(self, stream: anyio.abc.ByteReceiveStream) -> None:
        self.stream, self.buffer = stream, b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


async def client(socket: str, clusters: int, show: str | None = None) -> None:
    """Creates the clusters one after another, showing one of those created
    every 10 ms meanwhile and until a line on stdin; prints the time the
    creates took, then the show latencies (sorted, JSON)."""
    channel = Channel(path=socket)
    stub = FleetStub(channel)
    shows: list[float] = []
    created = 0
    stop = anyio.Event()

    async def show_until_stopped() -> None:
        while not stop.is_set():
            if created or show:
                began = time.perf_counter()
                await stub.GetCluster(api.NameRequest(name=show or f"c{created // 2}"))
                shows.append(time.perf_counter() - began)
            await anyio.sleep(0.01)

    async def wait_stop() -> None:
        await anyio.to_thread.run_sync(sys.stdin.readline)
        stop.set()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(show_until_stopped)
        tasks.start_soon(wait_stop)
        began = time.monotonic()
        for n in range(clusters):
            await stub.CreateCluster(
                api.CreateClusterRequest(name=f"c{n}", control_plane_replicas=3)
            )
            created += 1
        print(time.monotonic() - began, flush=True)
    print(json.dumps(sorted(shows)), flush=True)
    channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--latency", type=float, default=0.002)
    parser.add_argument("--only", choices=["all-at-once"], help="run that phase alone")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the all-at-once daemon with py-spy into DIR")  # fmt: skip
    parser.add_argument("--client", metavar="SOCKET", help=argparse.SUPPRESS)
    parser.add_argument("--show", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        anyio.run(client, args.client, args.clusters[0], args.show)
        return
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for clusters in args.clusters:
        if args.only is None:
            with tempfile.TemporaryDirectory() as tmp:
                anyio.run(run_size, clusters, args.latency, Path(tmp))
        with tempfile.TemporaryDirectory() as tmp:
            anyio.run(run_all_at_once, clusters, args.latency, Path(tmp), args.profile)


if __name__ == "__main__":
    main()
