"""Secrets and configs (moby `api/types/swarm/secret.go`, `config.go`) and the references a
container spec makes to them (`container.go`: `SecretReference`, `ConfigReference`).

Both hold a payload (`Spec.Data`, bytes; base64 in JSON). A secret's payload is sealed in
the store and never shown by the API (`to_api()` leaves it out); a config's is shown. Only
the labels of either can change after it was created.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from shoal.api.models.base import Base64Bytes, GoJSON, Meta, Model
from shoal.api.models.networks import Driver

SECRETS_DIR = "/run/secrets"  # where a secret with a relative target is, in the container


class SecretSpec(Model):
    GO_JSON = GoJSON(always={"Labels": {}}, never=frozenset({"Data"}))

    name: str = ""
    labels: dict[str, str] | None = None
    data: Base64Bytes | None = Field(default=None, repr=False)
    driver: Driver | None = None
    templating: Driver | None = None


class ConfigSpec(Model):
    GO_JSON = GoJSON(always={"Labels": {}})

    name: str = ""
    labels: dict[str, str] | None = None
    data: Base64Bytes | None = None
    templating: Driver | None = None


class Secret(Meta):
    spec: SecretSpec = Field(default_factory=SecretSpec)

    @property
    def name(self) -> str:
        return self.spec.name


class Config(Meta):
    spec: ConfigSpec = Field(default_factory=ConfigSpec)

    @property
    def name(self) -> str:
        return self.spec.name


Payload = Secret | Config


def templated(obj: Payload) -> bool:
    """Its payload is a template, expanded per task (`--template-driver golang`)."""
    return obj.spec.templating is not None and bool(obj.spec.templating.name)


class FileTarget(Model):
    """Where a secret or config appears in the container: a file, its owner and mode."""

    name: str = ""
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


class SecretReference(Model):
    file: FileTarget | None = None
    secret_id: str = ""
    secret_name: str = ""


class ConfigReference(Model):
    file: FileTarget | None = None
    runtime: dict[str, Any] | None = None
    config_id: str = ""
    config_name: str = ""


def secret_path(target: str) -> str:
    """A secret's path in the container: an absolute target as given, else under
    `/run/secrets` (moby's `getSecretTargetPath`)."""
    return target if target.startswith("/") else f"{SECRETS_DIR}/{target}"


def config_path(target: str) -> str:
    """A config's path in the container: an absolute target as given, else under `/`
    (moby's `getConfigTargetPath`)."""
    return target if target.startswith("/") else f"/{target}"
