"""What the hostile tests share: a gateway serving the test's runtime on
a loopback port of its own, for as long as the test runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hostile_serve import gateway_port

from casemail.runtime import Runtime


@pytest.fixture
def port(runtime: Runtime) -> Iterator[int]:
    with gateway_port(runtime) as number:
        yield number
