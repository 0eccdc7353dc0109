"""Prometheus metrics (`oneinfra daemon --metrics-address HOST:PORT`, off by
default), with the official client library, on a registry of the daemon's
own, served with `/healthz` and `/readyz` by a small HTTP server on a thread of its own.

Two kinds: what happens is counted as it happens (commands by kind and
result, the log's append latency); what is, is read from the state and the
status board at each scrape, under their locks, as the API's queries read
them (clusters by phase, components not running, the earliest certificate
expiry, nodes by Ready, the log position). Nothing is kept twice.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import DaemonError, DomainError
from ..model.kinds import RUNNING
from ..reconcile.board import StatusBoard
from ..reconcile.phases import UNOBSERVED
from .service import FleetService

# Seconds: from a no-op to a slow disk's fsync.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def result_of(error: BaseException | None) -> str:
    """ok, refused (the command was wrong: a DomainError) or failed."""
    if error is None:
        return "ok"
    return "refused" if isinstance(error, DomainError) else "failed"


class Metrics:
    """The daemon's registry, and what the service reports into it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "oneinfra_commands", "Commands decided, by kind and result (ok, refused, failed)",
            ["command", "result"], registry=self.registry,
        )  # fmt: skip
        self.command_seconds = Histogram(
            "oneinfra_command_seconds", "Time to decide and append a command, by kind",
            ["command"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.append_seconds = Histogram(
            "oneinfra_append_seconds", "Time to append a decision's events to the log",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.passes = Counter(
            "oneinfra_reconcile_passes", "Passes over a hypervisor, by result (ok, failed)",
            ["hypervisor", "result"], registry=self.registry,
        )  # fmt: skip
        self.cri_calls = Counter(
            "oneinfra_cri_calls", "CRI calls, by hypervisor, method and result",
            ["hypervisor", "method", "result"], registry=self.registry,
        )  # fmt: skip
        self.cri_seconds = Histogram(
            "oneinfra_cri_call_seconds", "Time of a CRI call, by method",
            ["method"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.pass_seconds = Histogram(
            "oneinfra_reconcile_pass_seconds", "Time of a pass over a hypervisor",
            ["hypervisor"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def command_done(self, command: str, error: BaseException | None, seconds: float) -> None:
        self.commands.labels(command, result_of(error)).inc()
        self.command_seconds.labels(command).observe(seconds)

    def appended(self, seconds: float) -> None:
        self.append_seconds.observe(seconds)

    def cri_call(self, hypervisor: str, method: str, result: str, seconds: float) -> None:
        self.cri_calls.labels(hypervisor, method, result).inc()
        self.cri_seconds.labels(method).observe(seconds)

    def pass_done(self, hypervisor: str, result: str, seconds: float) -> None:
        self.passes.labels(hypervisor, result).inc()
        self.pass_seconds.labels(hypervisor).observe(seconds)


class StateCollector(Collector):
    """What is, read at each scrape from the state and the board."""

    def __init__(
        self, service: FleetService, board: StatusBoard | None, clock: Callable[[], float]
    ) -> None:
        self.service, self.board, self.clock = service, board, clock

    def collect(self) -> Iterable[Metric]:
        position = GaugeMetricFamily(
            "oneinfra_log_position", "The log position the desired state has folded"
        )
        phases = GaugeMetricFamily(
            "oneinfra_clusters",
            "Clusters by phase, as the reconciler last saw them",
            labels=["phase"],
        )
        down = GaugeMetricFamily(
            "oneinfra_components_not_running", "Components of a cluster not running",
            labels=["cluster"],
        )  # fmt: skip
        expiry = GaugeMetricFamily(
            "oneinfra_certificate_expiry_seconds",
            "Seconds until the earliest expiry of a cluster's certificates", labels=["cluster"],
        )  # fmt: skip
        nodes = GaugeMetricFamily(
            "oneinfra_nodes",
            "A cluster's nodes by Ready, as last observed",
            labels=["cluster", "ready"],
        )
        backup_age = GaugeMetricFamily(
            "oneinfra_backup_age_seconds",
            "Seconds since a cluster's last good backup (clusters with one)", labels=["cluster"],
        )  # fmt: skip
        backup_failures = GaugeMetricFamily(
            "oneinfra_backup_failures",
            "Backups of a cluster failed since its last good one", labels=["cluster"],
        )  # fmt: skip
        now = self.clock()
        # The state's lock, then the board's (the API's order), when there is one.
        with self.service.lock, self.board.lock if self.board else nullcontext():
            state = self.service.state
            position.add_metric([], state.position)
            by_phase: dict[str, int] = {}  # phase name -> clusters
            for cluster in state.clusters.values():
                status = self.board.clusters.get(cluster.cluster_id) if self.board else None
                phase = status.phase.phase if status else UNOBSERVED.phase
                by_phase[phase] = by_phase.get(phase, 0) + 1
                running = status.components if status else {}
                not_running = sum(
                    1 for c in cluster.components if running.get(c, UNOBSERVED).phase != RUNNING
                )
                down.add_metric([cluster.name], not_running)
                expires = min(
                    (c.validity.expires for c in cluster.certificates.values()), default=None
                )
                if expires is not None:
                    expiry.add_metric([cluster.name], expires - now)
                if cluster.backups:
                    backup_age.add_metric([cluster.name], now - cluster.backups[-1].taken_at)
                if cluster.backups or cluster.backup_schedule or cluster.backup_failure:
                    failed = cluster.backup_failure.attempts if cluster.backup_failure else 0
                    backup_failures.add_metric([cluster.name], failed)
                if status is not None and status.nodes_seen:
                    ready = sum(1 for n in status.nodes if n.ready)
                    nodes.add_metric([cluster.name, "true"], ready)
                    nodes.add_metric([cluster.name, "false"], len(status.nodes) - ready)
            for name, count in sorted(by_phase.items()):
                phases.add_metric([name], count)
        return [position, phases, down, expiry, nodes, backup_age, backup_failures]


class Server6(WSGIServer):
    address_family = socket.AF_INET6


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is no news


def application(registry: CollectorRegistry, healthy: Callable[[], bool]) -> Any:
    """`/healthz` and `/readyz`: 200 while the daemon takes commands (503
    once it stops); anything else: the metrics."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes] | list[bytes]:
        if environ.get("PATH_INFO") in ("/healthz", "/readyz"):
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain")])  # fmt: skip
            return [b"ok\n" if ok else b"stopping\n"]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT ([v6]:PORT); a bare :PORT is loopback's."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise DaemonError(f"--metrics-address {text!r} is not HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsServer:
    """The HTTP server, on a thread of its own: a slow scraper holds no one."""

    def __init__(self, address: str, registry: CollectorRegistry, healthy: Callable[[], bool]):
        host, port = parse_address(address)
        server_class = Server6 if ":" in host else WSGIServer
        try:
            self.server: WSGIServer = make_server(host, port, application(registry, healthy),
                                                  server_class=server_class,
                                                  handler_class=QuietHandler)  # fmt: skip
        except OSError as error:
            raise DaemonError(f"cannot serve metrics on {address}: {error.strerror}") from None
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics",
                                       daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        host, port = str(self.server.server_address[0]), int(self.server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_metrics(
    address: str, service: FleetService, board: StatusBoard | None, metrics: Metrics
) -> MetricsServer:
    metrics.registry.register(StateCollector(service, board, time.time))
    server = MetricsServer(address, metrics.registry, lambda: service.accepting)
    server.start()
    return server
