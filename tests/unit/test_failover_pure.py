"""When a candidate may take the leader for dead (`shoal.manager.failover`): only after enough
failed probes of its cluster port in a row, a grace after its term was first seen, and only
while another etcd member leads."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoal.manager.failover import FAILURES, GRACE, Suspicion, dead

probes = st.lists(st.tuples(st.booleans(), st.floats(0.0, 1.0)), max_size=30)


@given(probes)
def test_suspected_exactly_after_enough_failures_in_a_row_past_the_grace(
    seq: list[tuple[bool, float]],
) -> None:
    s = Suspicion()
    now, history, first = 100.0, [], None
    for answered, dt in seq:
        now += dt
        s.probed(7, now, answered)
        first = now if first is None else first  # the term is first seen at its first probe
        history.append(answered)
        in_a_row = len(history) >= FAILURES and not any(history[-FAILURES:])
        assert s.suspect(7, now) == (in_a_row and now - first >= GRACE)


def test_an_answer_or_a_new_term_starts_over() -> None:
    s = Suspicion()
    for t in range(FAILURES):
        s.probed(7, 10.0 + t, answered=False)
    assert s.suspect(7, 10.0 + GRACE)
    s.probed(7, 20.0, answered=True)
    assert not s.suspect(7, 20.0)
    for t in range(FAILURES):
        s.probed(8, 30.0 + 0.1 * t, answered=False)
    assert not s.suspect(8, 30.0 + 0.1 * FAILURES)  # a new term gets its grace
    assert s.suspect(8, 30.0 + GRACE)
    assert not s.suspect(7, 30.0 + GRACE)  # the old term is not judged any more


@given(st.booleans(), st.sampled_from(["a", "b", None]))
def test_dead_only_while_another_etcd_member_leads(
    suspected: bool, etcd_leader: str | None
) -> None:
    assert dead(suspected, "a", etcd_leader) == (suspected and etcd_leader == "b")
