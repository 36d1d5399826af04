"""Temporal alignment methods (Sec. 4.3) on hand-worked examples, and alignment policies."""

import pytest
import torch

from qac.align import POLICIES, AlignmentPolicy, align, align_signal, replicate_indices


def steps(T):
    return torch.arange(T, dtype=torch.float64).reshape(T, 1) + 10  # step t holds 10 + t


def test_replicate_4_to_5_nearest_index():
    assert replicate_indices(4, 5) == [0, 0, 1, 2, 3]
    assert align(steps(4), 5, "replicate").flatten().tolist() == [10, 10, 11, 12, 13]


def test_replicate_4_to_8_repeats_each_step_twice():
    assert align(steps(4), 8, "replicate").flatten().tolist() == [10, 10, 11, 11, 12, 12, 13, 13]


def test_replicate_can_reduce_by_nearest_index():
    assert align(steps(8), 3, "replicate").flatten().tolist() == [10, 12, 15]


def test_truncate_8_to_3_keeps_first_steps():
    assert align(steps(8), 3, "truncate").flatten().tolist() == [10, 11, 12]


def test_average_expands_and_reduces():
    assert align(steps(4), 6, "average").flatten().tolist() == [11.5] * 6
    assert align(steps(8), 3, "average").flatten().tolist() == [13.5] * 3
    assert align_signal(steps(8), 3, "average").shape == (1, 1)  # compact form in the simulator


def test_none_passes_through_and_checks_shape():
    x = steps(4)
    assert align(x, 4, "none") is x
    with pytest.raises(ValueError, match="T_in == T_out"):
        align(x, 5, "none")


def test_constant_signal_stays_constant_under_every_method():
    x = torch.ones(1, 3)
    for method in ["replicate", "truncate", "average", "none"]:
        assert align_signal(x, 7, method).shape == (1, 3)
        assert align(x, 7, method).shape == (7, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        ((steps(3), 5, "truncate"), "only reduces"),
        ((steps(3), 2, "interpolate"), "unknown alignment method"),
        ((steps(3), 0, "average"), "integer >= 1"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        align(*args)


def test_table4_policies_by_name():
    for name in ["repl+aver", "repl+trunc", "aver+trunc", "aver+aver"]:
        policy = AlignmentPolicy.parse(name)
        assert policy.name == name and policy.equal == "none"
    p = POLICIES["repl+trunc"]
    assert (p.method_for(4, 8), p.method_for(8, 4), p.method_for(4, 4)) == (
        "replicate",
        "truncate",
        "none",
    )
    assert AlignmentPolicy.parse("qcfs+aver").equal == "average"
    assert AlignmentPolicy.parse("aver+aver+aver").name == "aver+aver+aver"


def test_bad_policies():
    with pytest.raises(ValueError, match="cannot expand"):
        AlignmentPolicy("truncate", "average")
    with pytest.raises(ValueError, match="unknown alignment policy"):
        AlignmentPolicy.parse("magic")
    with pytest.raises(ValueError, match="equal-T boundaries"):
        AlignmentPolicy("average", "average", "truncate")
