"""What a node reports of itself (`shoal.agent.agent.describe`), as SwarmKit's executor does."""

from __future__ import annotations

import asyncio

from shoal.agent.agent import describe
from shoal.ca.authority import new_root_ca
from shoal.testing.fakes import FakeEngine


def test_plugins_sorted_by_type_then_name_and_the_trust_root() -> None:
    ca = new_root_ca()
    description = asyncio.run(describe(FakeEngine("h1"), ca.tls_info()))  # type: ignore[arg-type]
    assert description.engine is not None
    assert description.engine.plugins == [
        {"Type": "Log", "Name": "json-file"},
        {"Type": "Network", "Name": "bridge"},
        {"Type": "Volume", "Name": "local"},
    ]
    assert description.tls_info == ca.tls_info()
    assert description.to_api()["TLSInfo"]["CertIssuerSubject"] == "MBMxETAPBgNVBAMTCHN3YXJtLWNh"
