"""Placement constraints, as swarmkit's `manager/constraint` package parses and matches them.

`parse_constraints(["node.role==manager", "node.labels.zone != east"])` gives `Constraint`s or
raises `ConstraintError` with swarmkit's own text (`key 'x y' is invalid`, `value 'a<b' is
invalid`, `constraint expected one operator from ==, !=`). `node_matches(constraints, node)`
says whether a `shoal.api.models.Node` satisfies all of them; `constraints_match(exprs, node)`
does both for the scheduler and the orchestrators (unparsable expressions match any node).

Go details kept on purpose: the regexps are RE2's (ASCII `\\s`, `(?i)` folding which also
admits the Kelvin sign and long s), `strings.TrimSpace` trims Unicode white space only, and
values compare with `strings.EqualFold` (simple case folding, so "ß" never equals "ss").
Keys `node.id|hostname|ip|role|platform.os|platform.arch` and the `node.labels.` /
`engine.labels.` prefixes are case-insensitive; label names after the prefix are not.
An unknown key parses but never matches.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shoal.api.errors import ConstraintError
from shoal.api.models import Node

__all__ = [
    "ENGINE_LABEL_PREFIX",
    "NODE_LABEL_PREFIX",
    "OPERATORS",
    "Constraint",
    "ConstraintError",
    "constraints_match",
    "equal_fold",
    "go_trim_space",
    "node_matches",
    "parse_constraints",
]

NODE_LABEL_PREFIX = "node.labels."
ENGINE_LABEL_PREFIX = "engine.labels."
OPERATORS = ("==", "!=")

# RE2 `(?i)[a-z]` also matches U+017F (long s) and U+212A (Kelvin sign); Python's IGNORECASE
# would add U+0130/U+0131 too, so the folding is spelled out.
_FOLD = "a-zA-Z\u017f\u212a"
_KEY_RE = re.compile(rf"[{_FOLD}_][{_FOLD}0-9\-_.]+")
# `\s` in RE2 is [\t\n\f\r ].
_VALUE_RE = re.compile(rf"[{_FOLD}0-9:\-_\t\n\f\r .*()?+\[\]\\^$|/]+")

# unicode.IsSpace: Latin-1 spaces plus the White_Space property (no \x1c-\x1f, unlike str.strip)
_GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def go_trim_space(s: str) -> str:
    """Go's strings.TrimSpace."""
    return s.strip(_GO_SPACE)


def _same_fold(x: str, y: str) -> bool:
    if x == y:
        return True
    if x in "\u0130\u0131" or y in "\u0130\u0131":
        return False  # dotted/dotless i fold only in Turkic rules, which Go does not apply
    xl, yl = x.lower(), y.lower()
    if len(xl) == 1 and xl == yl:
        return True
    xu, yu = x.upper(), y.upper()
    return len(xu) == 1 and xu == yu


def equal_fold(a: str, b: str) -> bool:
    """Go's strings.EqualFold: equal under simple (rune-by-rune) Unicode case folding."""
    if a == b:
        return True
    if len(a) != len(b):
        return False
    return all(_same_fold(x, y) for x, y in zip(a, b, strict=True))


@dataclass(frozen=True, slots=True)
class Constraint:
    """One `key op value` expression. `key` and `exp` are as written, trimmed."""

    key: str
    operator: str  # "==" or "!="
    exp: str

    @property
    def equal(self) -> bool:
        return self.operator == "=="

    def match(self, *whats: str) -> bool:
        """swarmkit `Constraint.Match`: does any of `whats` equal the value (case-insensitive)?
        For `!=` the answer is inverted."""
        found = any(equal_fold(self.exp, w) for w in whats)
        return found if self.equal else not found

    def matches(self, node: Node, *, role: str | None = None) -> bool:
        """Does `node` satisfy this constraint?"""
        return node_matches((self,), node, role=role)

    def __str__(self) -> str:
        return f"{self.key}{self.operator}{self.exp}"


def parse_constraints(exprs: Iterable[str] | None) -> list[Constraint]:
    """swarmkit `constraint.Parse`. Raises ConstraintError on the first bad expression."""
    out: list[Constraint] = []
    for e in exprs or ():
        for op in OPERATORS:
            if op not in e:
                continue
            left, _, right = e.partition(op)
            key = go_trim_space(left)
            if not _KEY_RE.fullmatch(key):
                raise ConstraintError(f"key '{key}' is invalid")
            value = go_trim_space(right)
            if not _VALUE_RE.fullmatch(value):
                raise ConstraintError(f"value '{value}' is invalid")
            out.append(Constraint(key, op, value))
            break
        else:
            raise ConstraintError("constraint expected one operator from " + ", ".join(OPERATORS))
    return out


# ---------------------------------------------------------------- reading a node


def _has_prefix(key: str, prefix: str) -> bool:
    return len(key) > len(prefix) and equal_fold(key[: len(prefix)], prefix)


def _parse_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """net.ParseIP, with IPv4-mapped IPv6 folded to IPv4 (Go compares them as equal)."""
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _ip_matches(c: Constraint, node_addr: str) -> bool:
    node_ip = _parse_ip(node_addr)
    target = _parse_ip(c.exp)
    if target is not None:
        return (target == node_ip) == c.equal
    _addr, slash, bits = c.exp.partition("/")
    if slash and bits.isascii() and bits.isdigit():
        try:
            subnet = ipaddress.ip_network(c.exp, strict=False)
        except ValueError:
            return False
        within = node_ip is not None and node_ip.version == subnet.version and node_ip in subnet
        return within == c.equal
    return False  # malformed address or network never matches


def node_matches(constraints: Iterable[Constraint], node: Node, *, role: str | None = None) -> bool:
    """swarmkit `constraint.NodeMatches`.

    `node.role` compares against `role` when given (swarmkit uses the node's *observed*
    role), else against `Spec.Role`.
    """
    spec = node.spec
    desc = node.description
    platform = desc.platform if desc is not None else None
    for c in constraints:
        key = c.key
        if equal_fold(key, "node.id"):
            ok = c.match(node.id)
        elif equal_fold(key, "node.hostname"):
            ok = c.match((desc.hostname if desc is not None else None) or "")
        elif equal_fold(key, "node.ip"):
            ok = _ip_matches(c, node.status.addr or "")
        elif equal_fold(key, "node.role"):
            ok = c.match(role if role is not None else spec.role)
        elif equal_fold(key, "node.platform.os"):
            ok = c.match((platform.os if platform is not None else None) or "")
        elif equal_fold(key, "node.platform.arch"):
            ok = c.match((platform.architecture if platform is not None else None) or "")
        elif _has_prefix(key, NODE_LABEL_PREFIX):
            labels = spec.labels or {}
            ok = c.match(labels.get(key[len(NODE_LABEL_PREFIX) :], ""))
        elif _has_prefix(key, ENGINE_LABEL_PREFIX):
            engine = desc.engine if desc is not None else None
            labels = (engine.labels if engine is not None else None) or {}
            ok = c.match(labels.get(key[len(ENGINE_LABEL_PREFIX) :], ""))
        else:
            ok = False  # key outside the known syntax
        if not ok:
            return False
    return True


def constraints_match(constraints: list[str] | None, node: Node) -> bool:
    """True if `node` satisfies the `Placement.Constraints` expressions.

    Unparsable expressions (the API rejects them first) count as no constraints, as in
    swarmkit's orchestrators.
    """
    if not constraints:
        return True
    try:
        parsed = parse_constraints(constraints)
    except ConstraintError:
        return True
    return node_matches(parsed, node)
