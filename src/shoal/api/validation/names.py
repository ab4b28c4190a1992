"""Names and image references: swarmkit's name rules (services, networks, configs, secrets)
and distribution/reference's grammar of an image reference."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shoal.api.errors import InvalidArgument

# swarmkit `isValidDNSName` ^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$, rewritten without nested
# quantifiers (same language; Python's backtracking would be exponential on the original).
_DNS_NAME = re.compile(r"[a-zA-Z0-9]+(?:[-_]+[a-zA-Z0-9]+)*")
_CONFIG_SECRET_NAME = re.compile(r"[a-zA-Z0-9]+(?:[a-zA-Z0-9\-_.]*[a-zA-Z0-9])?")


def validate_name(name: str | None) -> None:
    """swarmkit `validateAnnotations` on a service (or network) name."""
    if not name:
        raise InvalidArgument("meta: name must be provided")
    if not _DNS_NAME.fullmatch(name):
        raise InvalidArgument("name must be valid as a DNS name component")
    if len(name) > 63:
        raise InvalidArgument("name must be 63 characters or fewer")


def validate_annotations(annotations: Mapping[str, Any] | None) -> None:
    """swarmkit `validateAnnotations`: `{"Name": …, "Labels": …}` (labels are not checked)."""
    validate_name((annotations or {}).get("Name"))


def validate_config_or_secret_name(name: str | None) -> None:
    """swarmkit `validateConfigOrSecretAnnotations`."""
    if not name:
        raise InvalidArgument("name must be provided")
    if len(name) > 64 or not _CONFIG_SECRET_NAME.fullmatch(name):
        raise InvalidArgument(
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, "
            "and the start and end character must be [a-zA-Z0-9]"
        )


# distribution/reference grammar (Go RE2: \w is ASCII)
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = _ALNUM + r"(?:(?:[._]|__|[-]+)" + _ALNUM + ")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = r"(?:" + _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*|\[(?:[a-fA-F0-9:]+)\])"
_NAME = r"(?:" + _HOST + r"(?::[0-9]+)?/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + ")*"
_REFERENCE = re.compile(
    r"(" + _NAME + r")(?::([\w][\w.-]{0,127}))?"
    r"(?:@([A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}))?",
    re.ASCII,
)
_IDENTIFIER = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+")


def is_valid_image_reference(image: str) -> bool:
    """Would `reference.ParseNormalizedNamed(image)` (distribution/reference) accept it?"""
    if len(image) > 1024 or _IDENTIFIER.fullmatch(image):
        return False
    i = image.find("/")
    head = image[:i]
    if i == -1 or (
        not any(c in head for c in ".:") and head != "localhost" and head.lower() == head
    ):
        domain, remainder = "docker.io", image
    else:
        domain, remainder = head, image[i + 1 :]
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return False
    m = _REFERENCE.fullmatch(domain + "/" + remainder)
    if m is None or len(m.group(1)) > 255:
        return False
    digest = m.group(3)
    if digest:
        algorithm, _, hexpart = digest.partition(":")
        want = _DIGEST_HEX.get(algorithm)
        if want is None or len(hexpart) != want or not _LOWER_HEX.fullmatch(hexpart):
            return False
    return True
