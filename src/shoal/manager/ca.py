"""The swarm's certificate authority as the managers keep it: the certificate in the swarm
object (`TLSInfo.TrustRoot`), the private key sealed in the store."""

from __future__ import annotations

import json

from shoal.api.errors import NOT_A_MANAGER, NotAcceptable
from shoal.ca.authority import RootCA
from shoal.store.store import Store

KEY = "ca/root"


async def save(store: Store, ca: RootCA) -> None:
    data = {"cert": ca.cert_pem.decode(), "key": ca.key_pem.decode()}
    await store.put_sensitive(KEY, json.dumps(data).encode())


def load(store: Store) -> RootCA:
    raw = store.sensitive(KEY)
    if raw is None:
        raise NotAcceptable(NOT_A_MANAGER)
    data = json.loads(raw)
    return RootCA(data["cert"].encode(), data["key"].encode())
