"""Leadership over a real PostgreSQL: a term whose work fails ends, and the
daemon contends again instead of stopping."""

from __future__ import annotations

import logging

import anyio
import pytest

from eventstore import PostgreSQLEventStore
from oneinfra.daemon.leadership import LEADERSHIP_STREAM, Leadership
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.anyio


async def test_a_term_whose_work_fails_ends_and_the_daemon_leads_again(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.new_database()
    async with await PostgreSQLEventStore.open(url) as store:
        leadership = Leadership(url, store, "d1", check=0.1, takeover=0.3)
        terms: list[int | None] = []

        async def lead() -> None:
            terms.append(leadership.term)
            if len(terms) == 1:
                raise RuntimeError("a bug in the reconciler")
            leadership.stop()

        with caplog.at_level(logging.ERROR, "oneinfra.daemon"), anyio.fail_after(30):
            await leadership.run(lead)
        assert terms == [1, 2]
        assert "term 1 failed" in caplog.text and "a bug in the reconciler" in caplog.text
        assert await store.current_version(LEADERSHIP_STREAM) == 1  # two terms recorded
