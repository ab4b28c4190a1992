"""Published ports of the routing mesh, pure: a port given in the spec is the service's (the
control API refused conflicts); an ingress port given as 0 gets the first free one of
SwarmKit's dynamic range, kept by the service across updates while its spec asks the same.
Host-mode ports are never allocated (each node opens them where a task runs)."""

from __future__ import annotations

from collections.abc import Iterable

from shoal.api.models import PortConfig, Service, is_ingress

DYNAMIC_FIRST = 30000  # SwarmKit's dynamic port range
DYNAMIC_LAST = 32767


class PortsExhausted(Exception):
    """No port of the dynamic range is free."""


def _key(p: PortConfig) -> tuple[str, int]:
    return (p.protocol or "tcp", p.published_port or 0)


class PublishedPorts:
    def __init__(self) -> None:
        self.used: dict[tuple[str, int], str] = {}  # (protocol, port) → service ID

    def load(self, services: Iterable[Service]) -> None:
        for s in services:
            for p in (s.endpoint.ports if s.endpoint else None) or []:
                if is_ingress(p) and p.published_port:
                    self.used[_key(p)] = s.id

    def allocate(self, service: Service) -> list[PortConfig]:
        """The service's ports as allocated (`Endpoint.Ports`): the spec's, in its order, an
        ingress port without a published one given the port it had (same protocol and
        target) or a new one. Raises PortsExhausted (nothing taken then)."""
        spec = service.spec.endpoint_spec
        had = [p for p in (service.endpoint.ports if service.endpoint else None) or []]
        given = {_key(p) for p in (spec.ports if spec else None) or [] if p.published_port}
        out: list[PortConfig] = []
        taken: list[tuple[str, int]] = []
        for p in (spec.ports if spec else None) or []:
            port = p.model_copy()
            if is_ingress(port) and not port.published_port:
                port.published_port = self._previous(service.id, port, had, given, taken)
                if port.published_port is None:
                    port.published_port = self._free(service.id, port.protocol or "tcp", taken)
                taken.append(_key(port))
            out.append(port)
        self.release(service.id)
        for p in out:
            if is_ingress(p) and p.published_port:
                self.used[_key(p)] = service.id
        return out

    def _previous(
        self,
        service_id: str,
        port: PortConfig,
        had: list[PortConfig],
        given: set[tuple[str, int]],
        taken: list[tuple[str, int]],
    ) -> int | None:
        for old in had:
            key = _key(old)
            if (
                is_ingress(old)
                and (old.protocol or "tcp") == (port.protocol or "tcp")
                and old.target_port == port.target_port
                and key not in given
                and key not in taken
                and self.used.get(key, service_id) == service_id
            ):
                return old.published_port
        return None

    def _free(self, service_id: str, protocol: str, taken: list[tuple[str, int]]) -> int:
        for n in range(DYNAMIC_FIRST, DYNAMIC_LAST + 1):
            key = (protocol, n)
            if key not in taken and self.used.get(key, service_id) == service_id:
                if key not in self.used:
                    return n
        raise PortsExhausted(f"no free port left in {DYNAMIC_FIRST}-{DYNAMIC_LAST}/{protocol}")

    def release(self, service_id: str) -> None:
        for key in [k for k, sid in self.used.items() if sid == service_id]:
            del self.used[key]
