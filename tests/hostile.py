"""Tools of a hostile local user, for the hostile-input tests and their
longer run (benchmarks/hostile_bench.py): raw HTTP/2 (h2) on the daemon's
socket, gRPC calls with any bytes as the request, and the daemon's memory."""

from __future__ import annotations

import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from google.protobuf.message import Message
from hypothesis import strategies as st

from oneinfra.api.pb.oneinfra.v1 import fleet_pb2 as api

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Reply:
    status: int | None  # the grpc-status; None when the connection ended first
    message: str
    data: bytes


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    """One raw HTTP/2 frame, whatever its type."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


class RawClient:
    """An HTTP/2 connection on the socket, driven by hand (h2's state machine)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.flush()
        self.pending: list[h2.events.Event] = []

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def call(self, method: str, body: bytes, *, declared: int | None = None) -> Reply:
        """A unary call whose request is `body`, prefixed with `declared` as
        its length (its true length unless told otherwise)."""
        stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream, [
            (":method", "POST"), (":scheme", "http"), (":path", f"/oneinfra.v1.Fleet/{method}"),
            (":authority", "oneinfra"), ("content-type", "application/grpc"), ("te", "trailers"),
        ])  # fmt: skip
        length = len(body) if declared is None else declared
        payload = struct.pack(">?I", False, length) + body
        sent = 0
        while sent < len(payload):
            window = min(self.h2.local_flow_control_window(stream), self.h2.max_outbound_frame_size)
            if window <= 0:
                # Wait for the server to want more; it may answer instead
                # (a refusal), or stop wanting: what a limit looks like.
                try:
                    received = self.sock.recv(65536)
                except (ConnectionError, TimeoutError):
                    break
                if not received:
                    break
                events = self.h2.receive_data(received)
                self.pending += events
                if any(self.answered(e, stream) for e in events):
                    break
                self.flush()
                continue
            chunk = payload[sent : sent + window]
            self.h2.send_data(stream, chunk, end_stream=sent + len(chunk) == len(payload))
            sent += len(chunk)
            self.flush()
        return self.reply(stream)

    @staticmethod
    def answered(event: h2.events.Event, stream: int) -> bool:
        return (getattr(event, "stream_id", None) == stream and isinstance(
            event, h2.events.TrailersReceived | h2.events.StreamReset | h2.events.StreamEnded
        )) or (isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream
              and any(k == b"grpc-status" for k, _ in event.headers))  # fmt: skip

    def reply(self, stream: int) -> Reply:
        data = b""
        events, self.pending = self.pending, []
        while True:
            for event in events:
                if isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    data += event.data
                    self.h2.acknowledge_received_data(event.flow_controlled_length, stream)
                if isinstance(event, h2.events.TrailersReceived | h2.events.ResponseReceived):
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                    if "grpc-status" in headers:
                        message = urllib.parse.unquote(headers.get("grpc-message", ""))
                        return Reply(int(headers["grpc-status"]), message, data)
                if isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    return Reply(None, "stream reset", data)
            self.flush()
            try:
                received = self.sock.recv(65536)
            except (ConnectionError, TimeoutError):
                return Reply(None, "connection ended", data)
            if not received:
                return Reply(None, "connection closed", data)
            events = self.h2.receive_data(received)


@contextmanager
def daemon(
    root: Path, *args: str, open_files: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """A real daemon (reconciler off) on root/oneinfra.sock, its stderr in
    root/daemon.log; with `open_files`, under that limit of open files."""

    def limited() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    log = (root / "daemon.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "oneinfra", "daemon", "--state-dir", str(root / "state"),
         "--socket", str(root / "oneinfra.sock"), "--no-reconcile", *args],
        stderr=log, text=True, preexec_fn=limited,
    )  # fmt: skip
    try:
        for _ in range(300):
            if "serving on" in (root / "daemon.log").read_text():
                break
            if process.poll() is not None:
                raise RuntimeError((root / "daemon.log").read_text())
            subprocess.run(["sleep", "0.05"], check=True)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def cli(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ONEINFRA_SOCKET=str(root / "oneinfra.sock"))
    return subprocess.run(
        [sys.executable, "-m", "oneinfra", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
    )  # fmt: skip


# -- fuzzed commands: any field of any command, of any size ------------------------

REQUESTS: dict[str, type[Message]] = {
    "RegisterHypervisor": api.RegisterHypervisorRequest,
    "LabelHypervisor": api.LabelHypervisorRequest,
    "RemoveHypervisor": api.NameRequest,
    "CreateCluster": api.CreateClusterRequest,
    "ScaleCluster": api.ScaleClusterRequest,
    "DeleteCluster": api.NameRequest,
    "IssueKubeconfig": api.IssueKubeconfigRequest,
    "GetCluster": api.NameRequest,
    "Replay": api.ReplayRequest,
    "VerifyLog": api.VerifyRequest,
}
texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["pub", "priv", "c", "a" * 41, "10.96.0.0/12", "::1/128", "unix:///x"]),
    st.integers(1, 300_000).map(lambda n: "x" * n),
)
numbers = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 3, 7, 8, 2**31]))


@st.composite
def fuzzed(draw: st.DrawFn) -> tuple[str, bytes]:
    method = draw(st.sampled_from(sorted(REQUESTS)))
    kind = REQUESTS[method]
    values: dict[str, object] = {}
    for field in kind.DESCRIPTOR.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None:  # a map of strings (labels, set)
            values[field.name] = draw(st.dictionaries(texts, texts, max_size=3))
        elif field.is_repeated:
            values[field.name] = draw(st.lists(texts, max_size=3))
        elif field.type == field.TYPE_STRING:
            values[field.name] = draw(texts)
        elif field.type == field.TYPE_BOOL:
            values[field.name] = draw(st.booleans())
        elif field.type == field.TYPE_UINT64:
            values[field.name] = draw(st.one_of(numbers, st.integers(2**62, 2**64 - 1)))
        else:
            values[field.name] = draw(numbers)
    return method, kind(**values).SerializeToString()
