"""Hostile-input run: the daemon (reconciler off) against a local user who
sends it fuzzed commands, garbage and oversized messages, and holds idle
connections past its file limit; the longer run of tests/oneinfra/test_hostile.py.

Prints JSON lines {"metric", "value", "unit"}: commands tried, the daemon's
crashes (must be 0), internal errors (UNKNOWN or INTERNAL statuses: must be
0), events appended by refused commands (must be 0), garbage connections,
and the daemon's peak memory (VmHWM).

    .venv/bin/python benchmarks/hostile_bench.py [--commands 2000] [--garbage 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, settings

from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api
from tests.hostile import PREFACE, RawClient, cli, daemon, frame, fuzzed

INTERNAL = {2, 13}


def emit(metric: str, value: float, unit: str) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 4), "unit": unit}), flush=True)


def peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def head(path: Path) -> int:
    client = RawClient(path)
    reply = client.call("LogHead", b"")
    client.close()
    return api.LogHeadReply.FromString(reply.data[5:]).position


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--garbage", type=int, default=1000)
    parser.add_argument("--idle", type=int, default=2000)
    args = parser.parse_args()
    counts = {"tried": 0, "internal": 0, "appended_by_refused": 0, "refused": 0}
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        sock = root / "oneinfra.sock"
        with daemon(root, open_files=1024) as process:
            cli(root, "hypervisor", "add", "pub", "--endpoint", "unix:///hv/p.sock",
                "--ip-address", "192.0.2.1", "--public")  # fmt: skip
            cli(root, "hypervisor", "add", "priv", "--endpoint", "unix:///hv/q.sock",
                "--ip-address", "192.0.2.2", "--private")  # fmt: skip

            @settings(max_examples=args.commands, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(attempt=fuzzed())
            def attack(attempt: tuple[str, bytes]) -> None:
                method, request = attempt
                before = head(sock)
                client = RawClient(sock)
                reply = client.call(method, request)
                client.close()
                counts["tried"] += 1
                if reply.status is None or reply.status in INTERNAL:
                    counts["internal"] += 1
                elif reply.status != 0:
                    counts["refused"] += 1
                    counts["appended_by_refused"] += head(sock) != before

            attack()
            for index in range(args.garbage):
                with socket.socket(socket.AF_UNIX) as raw:
                    raw.connect(str(sock))
                    junk = os.urandom(512 + index % 4096)
                    raw.sendall(junk if index % 2 else PREFACE + frame(0xF0, 0, 0, junk))
            idle = []
            for _ in range(args.idle):
                raw = socket.socket(socket.AF_UNIX)
                raw.connect(str(sock))
                raw.sendall(PREFACE + frame(4, 0, 0, b""))
                idle.append(raw)
            served = cli(root, "cluster", "list").returncode == 0
            for raw in idle:
                raw.close()
            crashed = process.poll() is not None
            peak = peak_kib(process.pid) if not crashed else 0
        log = (root / "daemon.log").read_text()
    emit("commands_tried", counts["tried"], "commands")
    emit("commands_refused", counts["refused"], "commands")
    emit("internal_errors", counts["internal"], "replies")
    emit("events_appended_by_refused_commands", counts["appended_by_refused"], "commands")
    emit("garbage_connections", args.garbage, "connections")
    emit("idle_connections", args.idle, "connections")
    emit("served_while_idle_connections_held", int(served), "bool")
    emit("daemon_crashes", int(crashed), "crashes")
    emit("tracebacks_in_daemon_log", log.count("Traceback"), "tracebacks")
    emit("daemon_peak_memory", peak / 1024, "MiB")


if __name__ == "__main__":
    main()
