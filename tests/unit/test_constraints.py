"""swarmkit `manager/constraint` behaviour (parse errors and NodeMatches).

Expected texts were checked against a real Docker swarm manager (dockerd 20.10.24, same
swarmkit constraint package as moby 28)."""

import pytest

from shoal.api.constraints import (
    Constraint,
    ConstraintError,
    constraints_match,
    equal_fold,
    go_trim_space,
    node_matches,
    parse_constraints,
)
from shoal.api.models import Node


def _parse_error(expr: str) -> str:
    with pytest.raises(ConstraintError) as e:
        parse_constraints([expr])
    return str(e.value)


# ---------------------------------------------------------------- parsing


def test_parse_both_operators():
    assert parse_constraints(["node.role==manager", "node.labels.zone != east"]) == [
        Constraint("node.role", "==", "manager"),
        Constraint("node.labels.zone", "!=", "east"),
    ]


def test_parse_none_and_empty():
    assert parse_constraints(None) == []
    assert parse_constraints([]) == []


@pytest.mark.parametrize("expr", ["foo", "node.role=manager", "a=!b", ""])
def test_missing_operator(expr):
    assert _parse_error(expr) == "constraint expected one operator from ==, !="


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("no de==x", "key 'no de' is invalid"),
        ("==x", "key '' is invalid"),
        ("a==x", "key 'a' is invalid"),  # the key needs two characters
        ("1a==x", "key '1a' is invalid"),
        ("a!==b", "key 'a!' is invalid"),  # "==" is looked for first
        ("\u0131a==x", "key '\u0131a' is invalid"),  # dotless i does not fold in Go
    ],
)
def test_invalid_key(expr, message):
    assert _parse_error(expr) == message


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("node.role==a<b", "value 'a<b' is invalid"),
        ("node.role==", "value '' is invalid"),
        ("node.role===x", "value '=x' is invalid"),
        ("a.b==b==c", "value 'b==c' is invalid"),
        ("ab==a,b", "value 'a,b' is invalid"),
        ("kk==\u00e9", "value '\u00e9' is invalid"),
        ("kk==v\x1c", "value 'v\x1c' is invalid"),  # not white space for Go
    ],
)
def test_invalid_value(expr, message):
    assert _parse_error(expr) == message


def test_first_bad_expression_wins():
    with pytest.raises(ConstraintError, match="key 'x y' is invalid"):
        parse_constraints(["node.role==manager", "x y==1", "foo"])


def test_accepted_syntax():
    parsed = parse_constraints(
        [
            " node.role == manager ",
            "node.ip==10.0.0.0/8",
            "kk==v with space",
            "_a==*",
            "\u017f\u017f==x",  # RE2 (?i) folds long s into [a-z]
            "\u212ak==v",  # and the Kelvin sign
            "kk==v\u00a0",  # NBSP trimmed by strings.TrimSpace
        ]
    )
    assert parsed[0] == Constraint("node.role", "==", "manager")
    assert parsed[-1].exp == "v"


def test_go_trim_space_keeps_separators():
    assert go_trim_space("\u3000 a\x1c\t") == "a\x1c"


def test_equal_fold_is_simple_folding():
    assert equal_fold("Manager", "mANAGER")
    assert equal_fold("\u212a", "k")
    assert equal_fold("\u017f", "S")
    assert not equal_fold("\u00df", "ss")
    assert not equal_fold("\u0131", "i")
    assert not equal_fold("ab", "abc")


def test_match_and_operator():
    eq, ne = Constraint("k", "==", "Value"), Constraint("k", "!=", "Value")
    assert eq.match("value") and not eq.match("other")
    assert eq.match("x", "VALUE")
    assert not ne.match("value") and ne.match("other")
    assert str(ne) == "k!=Value"


# ---------------------------------------------------------------- matching nodes

NODE_JSON = {
    "ID": "node1id",
    "Spec": {"Role": "manager", "Availability": "active", "Labels": {"Zone": "East"}},
    "Description": {
        "Hostname": "host-1",
        "Platform": {"Architecture": "x86_64", "OS": "linux"},
        "Engine": {"Labels": {"disk": "ssd"}},
    },
    "Status": {"State": "ready", "Addr": "10.0.0.5"},
}
NODE = Node.model_validate(NODE_JSON)


def _matches(*exprs, node=NODE, **kw):
    return node_matches(parse_constraints(list(exprs)), node, **kw)


@pytest.mark.parametrize(
    "expr",
    [
        "node.id==node1id",
        "NODE.ID==NODE1ID",
        "node.hostname==HOST-1",
        "node.role==manager",
        "node.platform.os==linux",
        "node.platform.arch==x86_64",
        "node.labels.Zone==east",
        "NODE.LABELS.Zone==east",
        "engine.labels.disk==ssd",
        "node.ip==10.0.0.5",
        "node.ip==::ffff:10.0.0.5",
        "node.ip==10.0.0.0/24",
        "node.ip!=10.0.1.0/24",
        "node.ip!=10.0.0.6",
        "node.labels.missing!=x",
        "node.role!=worker",
    ],
)
def test_node_matches(expr):
    assert _matches(expr)


@pytest.mark.parametrize(
    "expr",
    [
        "node.id!=node1id",
        "node.hostname==host-2",
        "node.labels.zone==east",  # label names are case-sensitive
        "node.labels.Zone!=east",
        "engine.labels.disk==hdd",
        "node.ip==10.0.0.6",
        "node.ip!=10.0.0.0/24",
        "node.ip==10.0.0.0/33",  # malformed network never matches
        "node.ip==nonsense",
        "node.ip==fe80::/64",  # other family
        "node.labels.==x",  # nothing after the prefix: unknown key
        "foo.bar==x",
        "node.platform.os==windows",
    ],
)
def test_node_does_not_match(expr):
    assert not _matches(expr)


def test_all_constraints_must_hold():
    assert _matches("node.role==manager", "node.labels.Zone==east")
    assert not _matches("node.role==manager", "node.labels.Zone==west")


def test_missing_description_matches_empty_value():
    bare = Node.model_validate({"ID": "n", "Spec": {"Role": "worker"}})
    assert _matches("node.hostname!=host-1", node=bare)
    assert not _matches("node.hostname==host-1", node=bare)
    assert _matches("node.platform.os!=linux", "engine.labels.x!=y", node=bare)
    assert not _matches("node.ip==10.0.0.5", node=bare)
    assert _matches("node.ip!=10.0.0.5", node=bare)


def test_observed_role_overrides_spec_role():
    assert not _matches("node.role==manager", role="worker")
    assert _matches("node.role==worker", role="WORKER")


def test_constraint_matches_shortcut():
    (c,) = parse_constraints(["node.labels.Zone==east"])
    assert c.matches(NODE)


def test_pydantic_node_model():
    node = Node.model_validate(NODE_JSON)
    assert _matches("node.hostname==host-1", "node.labels.Zone==east", node=node)
    assert _matches("engine.labels.disk==ssd", "node.ip==10.0.0.5", node=node)
    assert not _matches("node.platform.os==windows", node=node)


def test_constraints_match_helper():
    n = Node.model_validate({"ID": "n1", "Spec": {"Labels": {"a": "b"}}})
    assert constraints_match(None, n)
    assert constraints_match(["node.labels.a==b"], n)
    assert not constraints_match(["node.labels.a==c"], n)
    assert constraints_match(["bogus"], n)  # unparsable = no constraints (swarmkit)
