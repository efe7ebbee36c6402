"""Fixtures of the control center service tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from service_helpers import TOKEN, Api, ServiceProcess

from databases import BACKENDS, Databases


@pytest.fixture(scope="module", params=BACKENDS)
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One ``ntxcp control-center`` process per test module and storage backend, with an
    API token and a one-second call timeout (for the 504 case)."""
    directory = tmp_path_factory.mktemp("service")
    db = Databases(request.param, request, directory).new()
    process = ServiceProcess(directory, "--api-token", TOKEN, "--call-timeout", "1", db=db).start()
    yield process
    try:
        assert process.stop() == 0, process.stderr()
    finally:
        process.kill()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(service: ServiceProcess, http: aiohttp.ClientSession) -> Api:
    """A client of the module's service, sending its token."""
    return Api(http, service.api_url, TOKEN)
