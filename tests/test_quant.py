"""Quantizers: Eq. 5 forward, Eqs. 7-10 gradients, integer timesteps, QCFS, argument errors."""

import math

import pytest
import torch

from qac.quant import (
    InfiniteTimestepsError,
    QACQuantizer,
    QCFSQuantizer,
    quantize,
    round_half_up,
)

LN2 = math.log(2.0)


def eq5(x, alpha, T):
    levels = torch.floor(x * T / alpha + 0.5)
    T = torch.as_tensor(T, dtype=x.dtype)
    return alpha / T * torch.minimum(torch.clamp(levels, min=0), T)


def test_round_half_up_differs_from_round_half_even():
    z = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49])
    assert round_half_up(z).tolist() == [1.0, 2.0, 3.0, 0.0, -1.0, 0.0]
    assert torch.round(z).tolist() != round_half_up(z).tolist()


@pytest.mark.parametrize("case, T_forward", [(1, 4), (2, 4), (3, 5), (4, 5)])
def test_forward_is_eq5(case, T_forward):
    """T = 5 asked: cases 1-2 learn the bit-width n = log2 5 and run 2**round(n) = 4 levels."""
    torch.manual_seed(case)
    q = QACQuantizer(case, alpha=2.0, timesteps=5).double()
    x = torch.randn(1000, dtype=torch.float64) * 2
    alpha, T = (v.detach() for v in q.alpha_and_levels())
    assert torch.equal(q(x), eq5(x, alpha, T))
    if case != 1:  # alpha is a parameter: exact ties x*T/alpha = k + 1/2 round up
        step = 2.0 / T_forward
        ties = torch.tensor([(k + 0.5) * step for k in range(T_forward)], dtype=torch.float64)
        want = [(k + 1) * step for k in range(T_forward)]
        assert q(ties).tolist() == pytest.approx(want, abs=1e-15)
    assert q.T == T_forward and isinstance(q.T, int)
    assert q.threshold == pytest.approx(2.0)  # case 1: d = alpha / T_forward


def closed_form(case, x, q, p):
    """Eqs. 7-10: gradient of Q(x) w.r.t. the case's two parameters, by region."""
    T = q.timesteps
    alpha = q.threshold
    Q = float(eq5(torch.tensor(x, dtype=torch.float64), alpha, T))
    if x < 0:
        return (0.0, 0.0)
    if x <= alpha:
        r = Q - x
        if case == 1:
            return (0.0, r / p["d"])  # (dn, dd)
        if case == 2:
            return (-LN2 * r, r / alpha)  # (dn, dalpha)
        if case == 3:
            return (r / p["d"], 0.0)  # (dd, dalpha)
        return (-r / p["t"], r / alpha)  # (dt, dalpha)
    if case == 1:  # alpha = d T with T = 2**n in the forward pass: dT/dn = T ln 2
        return (LN2 * T * p["d"], T)
    return (0.0, 1.0)


def random_points(alpha, gen):
    below = (-torch.rand(10, generator=gen, dtype=torch.float64) * alpha).tolist()
    inside = (torch.rand(20, generator=gen, dtype=torch.float64) * alpha).tolist()
    above = (alpha * (1 + torch.rand(10, generator=gen, dtype=torch.float64))).tolist()
    return below + inside + above


def check_gradients(case, q, params):
    gen = torch.Generator().manual_seed(123 + case)
    names = QACQuantizer.CASE_PARAMETERS[case]
    for x in random_points(q.threshold, gen):
        q.zero_grad()
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        q(xt).backward()
        got = tuple(float(getattr(q, name).grad) for name in names)
        want = closed_form(case, x, q, params)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), (case, x, got, want)
        inside = 0 <= x <= q.threshold
        assert float(xt.grad) == (1.0 if inside else 0.0)  # STE w.r.t. x


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_gradients_match_eqs_7_to_10_continuous_T(case):
    # Non-integer T, exactly Eq. 5 as written (fractional clip bound).
    q = QACQuantizer(case, alpha=1.7, timesteps=5.3, integer_timesteps=False).double()
    params = {n: float(getattr(q, n).detach()) for n in QACQuantizer.CASE_PARAMETERS[case]}
    assert q.timesteps == pytest.approx(5.3)
    check_gradients(case, q, params)


@pytest.mark.parametrize("case", [1, 2, 3, 4])
def test_gradients_match_eqs_7_to_10_integer_T(case):
    # The default integer-T forward pass; at integer T it is exactly the paper's setting.
    q = QACQuantizer(case, alpha=2.4, timesteps=4).double()
    params = {n: float(getattr(q, n).detach()) for n in QACQuantizer.CASE_PARAMETERS[case]}
    check_gradients(case, q, params)


def test_integer_timesteps_round_half_up_with_straight_through_gradient():
    q = QACQuantizer(4, alpha=2.0, timesteps=3.4).double()
    assert q.T == 3 and q.timesteps == 3.0
    q.t.data.fill_(3.5)
    assert q.T == 4
    q.t.data.fill_(0.2)  # t below 1/2 still simulates one step
    assert q.T == 1
    q.t.data.fill_(3.4)
    x = torch.tensor(0.9, dtype=torch.float64)
    q(x).backward()
    Q = float(eq5(x, 2.0, 3.0))
    assert float(q.t.grad) == pytest.approx(-(Q - 0.9) / 3.0)  # Eq. 10 at the forward T


@pytest.mark.parametrize("rounding, T", [("bits", 4), ("timesteps", 5)])
def test_integer_forward_equals_eq5_with_rounded_T(rounding, T):
    # n = 2.4: the bit-width rounds to 2 (T = 4); rounding="timesteps": 2^2.4 = 5.28 -> 5 levels
    q = QACQuantizer(2, alpha=3.0, timesteps=2**2.4, rounding=rounding).double()
    x = torch.linspace(-1, 4, 501, dtype=torch.float64)
    assert q.T == T
    assert torch.allclose(q(x), eq5(x, 3.0, float(T)), rtol=0, atol=1e-15)


N_VALUES = [-0.7, 0.2, 0.49, 0.5, 1.49, 1.5, 2.7, 3.2, 4.5, 6.9]


@pytest.mark.parametrize("case", [1, 2])
def test_cases_1_2_use_an_integer_bit_width(case):
    """Sec. 4.2: "n in N denotes the bit-width", T = 2^n: n rounds half up (at least 0), so T is
    a power of two and the bit-width log2 T an integer, for any learnt n."""
    q = QACQuantizer(case, alpha=2.0, timesteps=4).double()
    x = torch.linspace(-1, 3, 401, dtype=torch.float64)
    for n in N_VALUES:
        q.n.data.fill_(n)
        n_int = max(0, math.floor(n + 0.5))
        assert q.timesteps == 2.0**n_int and q.T == 2**n_int
        assert math.log2(q.timesteps) == n_int  # integer bits
        alpha, T = (v.detach() for v in q.alpha_and_levels())
        assert torch.equal(q(x), eq5(x, alpha, T))


@pytest.mark.parametrize("case", [1, 2])
@pytest.mark.parametrize("n", [0.2, 1.49, 2.7, 3.2])
def test_gradients_match_eqs_7_8_at_fractional_n(case, n):
    """Straight-through to the continuous n: Eqs. 7-8 with T = 2**round(n) (dT/dn = T ln 2)."""
    q = QACQuantizer(case, alpha=2.4, timesteps=4).double()
    q.n.data.fill_(n)
    params = {name: float(getattr(q, name).detach()) for name in QACQuantizer.CASE_PARAMETERS[case]}
    check_gradients(case, q, params)


def test_rounding_timesteps_keeps_the_fractional_bit_widths():
    q = QACQuantizer(1, alpha=2.0, timesteps=4, rounding="timesteps").double()
    q.n.data.fill_(math.log2(6.2))
    assert q.T == 6 and not math.log2(q.timesteps).is_integer()
    q3 = QACQuantizer(3, alpha=2.0, timesteps=6, rounding="bits")  # cases 3-4 always round T
    assert q3.T == 6
    with pytest.raises(ValueError, match="unknown QAC rounding 'bit'"):
        QACQuantizer(2, rounding="bit")


def test_case3_infinite_timesteps_are_reported_not_clamped():
    q = QACQuantizer(3, alpha=2.0, timesteps=4).double()
    q.d.data.fill_(0.0)
    assert math.isinf(q.timesteps)
    with pytest.raises(InfiniteTimestepsError, match="inf"):
        _ = q.T
    x = torch.linspace(-1, 3, 41, dtype=torch.float64)
    assert torch.equal(q(x), torch.clamp(x, 0, 2.0))  # the T -> infinity limit of Eq. 5
    q.d.data.fill_(1e-9)  # huge but finite: reported as it is
    assert q.T == 2_000_000_000


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"case": 5}, "unknown QAC case"),
        ({"case": 0}, "unknown QAC case"),
        ({"case": 4, "timesteps": 0.5}, "T must be"),
        ({"case": 4, "alpha": -1.0}, "alpha must be"),
        ({"case": 4, "alpha": 0.0}, "alpha must be"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        QACQuantizer(**kwargs)


def test_parameter_names_follow_the_paper():
    assert sorted(n for n, _ in QACQuantizer(1).named_parameters()) == ["d", "n"]
    assert sorted(n for n, _ in QACQuantizer(2).named_parameters()) == ["alpha", "n"]
    assert sorted(n for n, _ in QACQuantizer(3).named_parameters()) == ["alpha", "d"]
    assert sorted(n for n, _ in QACQuantizer(4).named_parameters()) == ["alpha", "t"]
    q = QACQuantizer(1, alpha=6.0, timesteps=8)
    assert q.n.item() == pytest.approx(3.0) and q.d.item() == pytest.approx(0.75)


def test_qcfs_forward_and_gradients():
    q = QCFSQuantizer(levels=4, theta=2.0).double()
    x = torch.linspace(-1, 3, 81, dtype=torch.float64)
    want = 2.0 * torch.clamp(torch.floor(x * 4 / 2.0 + 0.5) / 4, 0, 1)
    assert torch.equal(q(x), want)
    for xv in [-0.3, 0.7, 1.3, 2.5]:
        q.zero_grad()
        xt = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
        out = q(xt)
        out.backward()
        if xv < 0:
            assert float(q.theta.grad) == 0 and float(xt.grad) == 0
        elif xv <= 2.0:
            assert float(q.theta.grad) == pytest.approx((out.item() - xv) / 2.0)
            assert float(xt.grad) == 1
        else:
            assert float(q.theta.grad) == 1 and float(xt.grad) == 0
    with pytest.raises(ValueError, match="levels"):
        QCFSQuantizer(levels=0)
    with pytest.raises(ValueError, match="theta"):
        QCFSQuantizer(levels=4, theta=-1)


def test_functional_quantize_broadcasts_parameters():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    alpha = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64, requires_grad=True)
    T = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    out = quantize(x, alpha, T)
    assert torch.equal(out, eq5(x, alpha, T))
    out.sum().backward()
    assert alpha.grad.shape == alpha.shape and T.grad.shape == T.shape
