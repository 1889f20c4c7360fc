"""Property tests of tool_trajectory: the modes' implications, permutations, and the matchings against brute force."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from promptgauge.evaluators.trajectory import ToolTrajectoryEvaluator

NAMES = ("a", "b", "c")
call = st.builds(lambda name, x: {"name": name, "arguments": {"x": x}}, st.sampled_from(NAMES), st.integers(1, 2))
steps = st.lists(st.lists(call, min_size=1, max_size=2), max_size=4)
expected_calls = st.lists(call, max_size=4)
argument_modes = st.sampled_from(["off", "exact", "subset"])


def trajectory(step_list: list[list[dict]]) -> dict:
    """Our trajectory shape: calls carry their step; one more step for the answer."""
    calls = [{**c, "step": s, "id": f"c{s}_{i}"} for s, step in enumerate(step_list) for i, c in enumerate(step)]
    return {"tool_calls": calls, "steps": [{"step": s} for s in range(len(step_list) + 1)]}


def verdicts(actual, expected, arguments) -> dict[str, dict]:
    return {mode: ToolTrajectoryEvaluator(mode=mode, arguments=arguments)(trajectory=actual, expected=expected)
            for mode in ("exact", "in_order", "any_order", "subset", "superset")}


def passed(result: dict) -> bool:
    return result["tool_trajectory_result"] == "pass"


@settings(max_examples=300, deadline=None, database=None)
@given(steps, expected_calls, argument_modes)
def test_mode_implications_and_ranges(step_list, expected, arguments):
    v = verdicts(trajectory(step_list), expected, arguments)
    for r in v.values():
        for key in ("tool_trajectory", "tool_trajectory_precision", "tool_trajectory_recall"):
            assert 0.0 <= r[key] <= 1.0
        assert passed(r) == (r["tool_trajectory"] == 1.0)  # default threshold 1.0, no budgets
    if passed(v["exact"]):
        assert passed(v["in_order"]) and passed(v["any_order"])
    if passed(v["in_order"]):
        assert passed(v["superset"])
    if passed(v["any_order"]):
        assert passed(v["subset"]) and passed(v["superset"])
    assert passed(v["any_order"]) == (passed(v["subset"]) and passed(v["superset"]))
    # keeping the order can only lose matches
    assert v["in_order"]["tool_trajectory"] <= v["superset"]["tool_trajectory"]
    assert v["exact"]["tool_trajectory"] <= v["any_order"]["tool_trajectory"]


@settings(max_examples=200, deadline=None, database=None)
@given(expected_calls, argument_modes, st.randoms(use_true_random=False))
def test_any_permutation_passes_any_order(expected, arguments, rnd):
    shuffled = list(expected)
    rnd.shuffle(shuffled)
    v = verdicts(shuffled, expected, arguments)  # a bare list: one call per step
    assert passed(v["any_order"]) and passed(v["subset"]) and passed(v["superset"])
    same_sequence = [c["name"] for c in shuffled] == [c["name"] for c in expected] and all(
        a["arguments"] == b["arguments"] for a, b in zip(shuffled, expected))
    if same_sequence or (arguments == "off" and [c["name"] for c in shuffled] == [c["name"] for c in expected]):
        assert passed(v["exact"])
    # all of them emitted in parallel, in one step: order never matters
    assert passed(verdicts(trajectory([shuffled]) if shuffled else trajectory([]), expected, arguments)["exact"])


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(call, max_size=4), st.lists(call, max_size=4))
def test_any_order_is_symmetric(left, right):
    a = ToolTrajectoryEvaluator(mode="any_order")(trajectory=left, expected=right)
    b = ToolTrajectoryEvaluator(mode="any_order")(trajectory=right, expected=left)
    assert a["tool_trajectory"] == b["tool_trajectory"]
    assert a["tool_trajectory_precision"] == b["tool_trajectory_recall"]


def brute_force(step_list: list[list[dict]], expected: list[dict], arguments: str, ordered: bool) -> int:
    """The largest matching, by trying every pairing (keeping the expected order across steps if *ordered*)."""
    flat = [(s, c) for s, step in enumerate(step_list) for c in step]

    def fulfils(e: dict, a: dict) -> bool:
        if e["name"] != a["name"]:
            return False
        if arguments == "off":
            return True
        return e["arguments"] == a["arguments"] if arguments == "exact" else all(
            a["arguments"].get(k) == v for k, v in e["arguments"].items())

    for k in range(min(len(flat), len(expected)), 0, -1):
        for es in itertools.combinations(range(len(expected)), k):
            for js in itertools.permutations(range(len(flat)), k):
                if ordered and any(flat[js[i]][0] > flat[js[i + 1]][0] for i in range(k - 1)):
                    continue
                if all(fulfils(expected[e], flat[j][1]) for e, j in zip(es, js)):
                    return k
    return 0


@settings(max_examples=200, deadline=None, database=None)
@given(steps, expected_calls, argument_modes)
def test_matchings_are_maximal(step_list, expected, arguments):
    v = verdicts(trajectory(step_list), expected, arguments)
    assert v["in_order"]["tool_trajectory_details"]["matched"] == brute_force(step_list, expected, arguments, True)
    assert v["any_order"]["tool_trajectory_details"]["matched"] == brute_force(step_list, expected, arguments, False)
