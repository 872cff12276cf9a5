"""Signature parsing, plan compilation, presets and the taxonomy family."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rins import SignatureError, compile_plan, enumerate_variants, parse_signature, preset


@pytest.mark.parametrize(
    "sig,n,expected",
    [
        ("AB", 4, (0, 1, 2, 3)),
        ("A^2B", 4, (0, 1, 0, 1, 2, 3)),
        ("A^3B", 4, (0, 1, 0, 1, 0, 1, 2, 3)),
        ("AAB", 4, (0, 1, 0, 1, 2, 3)),
        ("(AB)^2", 4, (0, 1, 2, 3, 0, 1, 2, 3)),
        ("AB^2C", 6, (0, 1, 2, 3, 2, 3, 4, 5)),
        ("ABCCBA", 3, (0, 1, 2, 2, 1, 0)),
        ("(A^2B)^2", 2, (0, 0, 1, 0, 0, 1)),
        ("ABA", 4, (0, 1, 2, 3, 0, 1)),
    ],
)
def test_layers(sig, n, expected):
    assert compile_plan(sig, n).layers == expected


def test_degree_two_nests_pattern():
    plan = compile_plan("AAB", 8, degree=2)
    assert plan.layers == (0, 1, 0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5, 4, 5, 6, 7)
    # degree 3 on 8 layers: A=0-3 -> a=0-1 -> 0 ; nesting three times
    assert compile_plan("AB", 8, degree=3).layers == tuple(range(8))


def test_rounds_and_round_ends():
    p = compile_plan("A^2B", 4)
    assert p.rounds == (0, 0, 1, 1, -1, -1)
    assert p.round_ends == (1, 3)
    p = compile_plan("AB^3C", 3)
    assert p.rounds == (-1, 0, 1, 2, -1)
    assert p.round_ends == (1, 2, 3)
    p = compile_plan("(AB)^2", 2)
    assert p.rounds == (0, 0, 1, 1) and p.round_ends == (1, 3)
    # degree 2: rounds are top-level rounds
    p = compile_plan("A^2B", 4, degree=2)
    assert p.layers == (0, 0, 1, 0, 0, 1, 2, 2, 3)
    assert p.rounds == (0, 0, 0, 1, 1, 1, -1, -1, -1)


def test_recursion_exponent_is_first_explicit_exponent():
    assert parse_signature("(A^2B)^3").exponent == 2
    assert parse_signature("AB^3C^2").exponent == 3
    assert parse_signature("AAB").exponent is None
    p = compile_plan("(A^2B)^3", 2, r=4)
    assert p.layers == (0, 0, 0, 0, 1) * 3


def test_r_override():
    assert compile_plan("A^2B", 4, r=1).layers == (0, 1, 2, 3)
    assert compile_plan("A^2B", 4, r=5).layers == (0, 1) * 5 + (2, 3)
    assert compile_plan("AB^2C", 3, r=3).layers == (0, 1, 1, 1, 2)
    with pytest.raises(SignatureError, match="no explicit exponent"):
        compile_plan("AAB", 4, r=2)
    with pytest.raises(SignatureError, match="r must be >= 1"):
        compile_plan("A^2B", 4, r=0)


def test_block_sizes():
    assert compile_plan("A^2B", 5, block_sizes=[2, 3]).layers == (0, 1, 0, 1, 2, 3, 4)
    with pytest.raises(SignatureError, match="sum to"):
        compile_plan("AB", 5, block_sizes=[2, 2])
    with pytest.raises(SignatureError, match="entries"):
        compile_plan("AB", 4, block_sizes=[4])


def test_presets():
    assert preset("baseline") == "AB"
    assert preset("rins", 3) == "A^3B"
    assert preset("rao", 2) == "(AB)^2"
    assert preset("middle", 2) == "AB^2C"
    assert preset("cycle", 2) == "(ABC)^2"
    assert preset("sequence") == "AABBCC"
    assert preset("cycle_rev") == "ABCCBA"
    assert compile_plan("rins(3)", 4).layers == compile_plan("A^3B", 4).layers
    assert compile_plan("rins", 4).layers == compile_plan("A^2B", 4).layers
    with pytest.raises(SignatureError, match="unknown preset"):
        preset("nope")


@pytest.mark.parametrize(
    "bad,msg",
    [
        ("", "empty"),
        ("A(B", "unbalanced"),
        ("AB)", "unbalanced"),
        ("A^0B", "\\^0"),
        ("A^B", "positive integer"),
        ("^2A", "must follow"),
        ("A-B", "unknown character"),
        ("()", "empty group"),
        ("A^2^3", "double exponent"),
    ],
)
def test_bad_signatures(bad, msg):
    with pytest.raises(SignatureError, match=msg):
        compile_plan(bad, 4)


def test_bad_layer_counts():
    with pytest.raises(SignatureError, match="only 2 layers"):
        compile_plan("ABC", 2)
    with pytest.raises(SignatureError, match="not divisible"):
        compile_plan("ABC", 4)
    with pytest.raises(SignatureError, match="degree must be"):
        compile_plan("AB", 4, degree=0)
    with pytest.raises(SignatureError, match="only 1 layers"):
        compile_plan("ABC", 9, degree=3)


def test_enumerate_variants_reaches_55_distinct_plans():
    variants = list(enumerate_variants())
    assert len(variants) >= 55
    plans = {compile_plan(s, 12, degree=d).layers for s, d in variants}
    assert len(plans) == len(variants)
    assert variants[0] == ("AB", 1)
    sigs = {s for s, _ in variants}
    for must in ("A^2B", "A^3B", "(AB)^2", "AB^2C", "A^4B"):
        assert must in sigs
    assert any(d == 2 for _, d in variants)


def test_plan_to_dict_roundtrip_fields():
    d = compile_plan("A^2B", 4).to_dict()
    assert d["layers"] == [0, 1, 0, 1, 2, 3] and d["n_applications"] == 6 and d["cost_ratio"] == 1.5


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="AB C()^0123x", max_size=12), st.integers(1, 12), st.integers(0, 3))
def test_parser_never_crashes_unexpectedly(text, n, degree):
    try:
        plan = compile_plan(text, n, degree=degree)
    except ValueError:  # SignatureError is a ValueError
        return
    assert all(0 <= lay < n for lay in plan.layers)
    assert len(plan.rounds) == len(plan.layers)
