"""A daemon's service and reconciler, in process, over two fake CRI
hypervisors (a public one and a private one) and a real SQLite log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from eventstore import SQLiteEventStore
from oneinfra.daemon.service import FleetService
from oneinfra.model import commands as cmd
from oneinfra.reconcile.controller import Controller, Options
from oneinfra.storage.keystore import KeyStore
from tests.fakecri import FakeEtcd, FakeRuntime, serve_fake

from .test_controller import Api

HYPERVISORS = (("pub", "public", "192.0.2.1"), ("priv0", "private", "198.51.100.1"))


@asynccontextmanager
async def fake_fleet(
    root: Path, observer: Any = None, fakes: dict[str, FakeRuntime] | None = None, **options: Any
) -> AsyncIterator[tuple[FleetService, Controller]]:
    """The service and the controller running, both hypervisors registered
    (their fakes put in `fakes`, by name, if given); stopped on the way out."""
    async with AsyncExitStack() as stack:
        for name, _, _ in HYPERVISORS:
            fake = FakeRuntime(etcd=FakeEtcd())
            if fakes is not None:
                fakes[name] = fake
            await stack.enter_async_context(serve_fake(root / f"{name}.sock", fake))
        store = await stack.enter_async_context(await SQLiteEventStore.open(root / "events.db"))
        keys = KeyStore(root / "keys.db", b"k" * 32)
        stack.callback(keys.close)
        service = await FleetService.open(store, keys)
        if observer is not None:
            service.observer = observer
        controller = Controller(service, Options(resync=0.3, quick=0.02, max_backoff=0.2,
                                                 cri_timeout=0.5, probe=Api().probe,
                                                 **options))  # fmt: skip
        tasks = await stack.enter_async_context(anyio.create_task_group())
        await tasks.start(service.run)
        await tasks.start(controller.run)
        for name, role, address in HYPERVISORS:
            await service.execute(cmd.RegisterHypervisor(
                name=name, endpoint=f"unix://{root}/{name}.sock", role=role,
                ip_address=address, port_range=(30000, 30999), data_dir=f"/data/{name}",
            ))  # fmt: skip
        try:
            yield service, controller
        finally:
            controller.stop()
            service.stop_accepting()
