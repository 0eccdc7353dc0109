from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pgserver import PostgresServer, running_postgres


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL for the session (started when first asked
    for); each user takes a database of its own (new_database)."""
    with running_postgres() as server:
        yield server
