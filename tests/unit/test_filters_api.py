"""Docker's `filters` query parameter (`shoal.manager.controlapi.filters.Filters`)."""

from __future__ import annotations

import json

import pytest

from shoal.api.errors import BadRequest
from shoal.manager.controlapi.filters import Filters


def parse(obj: object) -> Filters:
    return Filters.parse(json.dumps(obj))


# ---------------------------------------------------------------- parsing


def test_map_form() -> None:
    f = parse({"name": {"web": True, "db": True}, "label": {"a=b": True}})
    assert f["name"] == {"web", "db"}
    assert f["label"] == {"a=b"}
    assert "name" in f and "label" in f


def test_list_form() -> None:
    f = parse({"name": ["web", "db"], "id": ["abc"]})
    assert f["name"] == {"web", "db"}
    assert f["id"] == {"abc"}


def test_both_forms_give_the_same_filters() -> None:
    assert (
        parse({"label": {"k": True, "x=y": True}}).values == parse({"label": ["k", "x=y"]}).values
    )


def test_map_form_values_set_false_are_dropped() -> None:
    assert parse({"name": {"web": True, "db": False}})["name"] == {"web"}


@pytest.mark.parametrize("raw", [None, "", "{}"])
def test_empty_filters(raw: str | None) -> None:
    f = Filters.parse(raw)
    assert f.values == {}
    assert "name" not in f
    assert f["name"] == set()
    assert f.match_prefix("name", "anything")
    assert f.match_exact("role", "worker")
    assert f.match_labels({})


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"name"', '{"name": "web"}', '{"name": 3}'])
def test_malformed_filters_are_bad_requests(raw: str) -> None:
    with pytest.raises(BadRequest) as e:
        Filters.parse(raw)
    assert e.value.status == 400
    assert str(e.value).startswith("invalid filter")


# ---------------------------------------------------------------- unknown keys


def test_unknown_filter_key_error_text() -> None:
    f = parse({"x": {"1": True}})
    with pytest.raises(BadRequest) as e:
        f.check({"id", "name", "label"})
    assert str(e.value) == "invalid filter 'x'"
    assert e.value.status == 400


def test_known_keys_pass_check() -> None:
    parse({"id": ["a"], "name": ["b"], "label": ["c"]}).check({"id", "name", "label", "mode"})


def test_check_names_the_offending_key_among_good_ones() -> None:
    f = parse({"name": ["web"], "desired_state": ["running"]})
    with pytest.raises(BadRequest, match=r"^invalid filter 'desired_state'$"):
        f.check({"name", "desired-state"})


# ---------------------------------------------------------------- matching


def test_id_and_name_match_prefixes() -> None:
    f = parse({"id": {"abc": True}, "name": {"we": True}})
    assert f.match_prefix("id", "abcdef123")
    assert not f.match_prefix("id", "xabc")
    assert f.match_prefix("name", "web")
    assert f.match_prefix("name", "we")
    assert not f.match_prefix("name", "db")


def test_several_values_of_one_key_match_any() -> None:
    f = parse({"name": ["web", "db"]})
    assert f.match_prefix("name", "db-1")
    assert f.match_prefix("name", "web")
    assert not f.match_prefix("name", "cache")


def test_match_exact() -> None:
    f = parse({"role": ["manager"]})
    assert f.match_exact("role", "manager")
    assert not f.match_exact("role", "managers")
    assert not f.match_exact("role", "man")
    assert not f.match_exact("role", None)


def test_label_key_only_means_present() -> None:
    f = parse({"label": {"com.docker.stack.namespace": True}})
    assert f.match_labels({"com.docker.stack.namespace": "st"})
    assert f.match_labels({"com.docker.stack.namespace": ""})
    assert not f.match_labels({"other": "x"})
    assert not f.match_labels(None)


def test_label_key_value_must_be_equal() -> None:
    f = parse({"label": {"com.docker.stack.namespace=st": True}})
    assert f.match_labels({"com.docker.stack.namespace": "st", "x": "y"})
    assert not f.match_labels({"com.docker.stack.namespace": "st2"})
    assert not f.match_labels({"com.docker.stack.namespace": ""})
    assert not f.match_labels({})


def test_label_with_empty_value() -> None:
    f = parse({"label": ["k="]})
    assert f.match_labels({"k": ""})
    assert not f.match_labels({"k": "v"})


def test_label_value_may_contain_equals() -> None:
    f = parse({"label": ["k=a=b"]})
    assert f.match_labels({"k": "a=b"})
    assert not f.match_labels({"k": "a"})


def test_every_label_filter_must_hold() -> None:
    f = parse({"label": {"a": True, "b=2": True}})
    assert f.match_labels({"a": "1", "b": "2"})
    assert not f.match_labels({"a": "1", "b": "3"})
    assert not f.match_labels({"b": "2"})


def test_node_label_filters_use_their_own_key() -> None:
    f = parse({"node.label": ["zone=a"]})
    assert f.match_labels({}, "label")  # no `label` filter: anything matches
    assert f.match_labels({"zone": "a"}, "node.label")
    assert not f.match_labels({"zone": "b"}, "node.label")
