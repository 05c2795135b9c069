"""contraction.lie for quadratic losses: exact polynomials in h with non-commuting matrix symbols.

Both the formal series and the matrix-symbol polynomials are exact for
quadratics; they are checked to 1e-12 against the affine closed forms of the
numeric core (``AffineMaps.word``).
"""

import time

import numpy as np
import pytest
import sympy
from limits import time_limit

import contraction as ct
from contraction import lie
from contraction.lie import _trees as trees


def _chain_value(chain, H, c, theta):
    v = H[chain[-1]] @ (theta - c[chain[-1]])
    for a in reversed(chain[:-1]):
        v = H[a] @ v
    return v


def test_formal_series_is_exact_for_quadratics():
    """Only chains H_{a1}⋯H_{a(k−1)} g_{ak} survive; truncated at the word length the series is exact."""
    rng = np.random.default_rng(3)
    G = rng.normal(size=(3, 3, 3))
    H = G @ np.swapaxes(G, 1, 2) / 3
    c, theta = rng.normal(size=(3, 3)), rng.normal(size=3)
    maps = ct.QuadraticModel(H, c).sgd_maps(0.7)
    for word in ([0, 2, 1], [1, 1, 0, 2]):
        s = lie.formal_composition(word, h_order=len(word))
        total = theta.copy()
        for k, terms in s.as_dict().items():
            for t, coef in terms.items():
                chain = trees.chain_labels(t)
                if chain is not None:
                    total += float(coef) * 0.7**k * _chain_value(chain, H, c, theta)
        A, b = maps.word(word)
        assert np.allclose(total, A @ theta + b, rtol=0, atol=1e-12)


def test_quadratic_difference_is_exact(rng):
    """Exact polynomial in h with matrix symbols; to 1e-12 against the affine closed forms."""
    q2 = lie.quadratic_difference((0, 1))
    assert sorted(q2.coefficients) == [2]
    H0, H1 = q2.hessians
    c0, c1 = q2.centers
    spec = (H1 * H0 - H0 * H1) * q2.theta - H1 * H0 * c0 + H0 * H1 * c1
    assert (q2.coefficients[2] - spec).expand() == sympy.ZeroMatrix(*spec.shape)
    q3 = lie.quadratic_difference((0, 1, 2))
    assert sorted(q3.coefficients) == [2, 3]
    qp = lie.quadratic_difference((0, 1, 2), orders=("palindromic", "forward"))
    for _ in range(10):
        d = int(rng.integers(1, 5))
        G = rng.normal(size=(3, d, d))
        H = G @ np.swapaxes(G, 1, 2) / d
        c, theta, h = rng.normal(size=(3, d)), rng.normal(size=d), float(rng.uniform(0.05, 1.5))
        maps = ct.QuadraticModel(H, c).sgd_maps(h)
        for q, words in ((q2, ([1, 0], [0, 1])), (q3, ([2, 1, 0], [0, 1, 2]))):
            (A, b), (A2, b2) = maps.word(words[0]), maps.word(words[1])
            assert np.abs(q.evaluate(H, c, theta, h) - ((A - A2) @ theta + b - b2)).max() <= 1e-12
        half = ct.QuadraticModel(H, c).sgd_maps(h / 2)
        Ap, bp = half.word([0, 1, 2, 2, 1, 0])
        A3, b3 = maps.word([2, 1, 0])
        assert np.abs(qp.evaluate(H, c, theta, h) - ((Ap - A3) @ theta + bp - b3)).max() <= 1e-12


def test_quadratic_difference_of_equal_orders_is_zero():
    q = lie.quadratic_difference((0, 1), orders=([1, 0], "forward"))
    assert q.coefficients == {} and isinstance(q.expr, sympy.ZeroMatrix)
    H, c = np.stack([np.eye(2), 2 * np.eye(2)]), np.ones((2, 2))
    assert np.array_equal(q.evaluate(H, c, np.zeros(2), 0.1), np.zeros(2))


_within = time_limit


def test_quadratic_difference_refuses_long_words_quickly():
    """A word of n letters has up to 2^n terms: at most 10 letters, refused at once beyond (16 ran for minutes)."""
    start = time.perf_counter()
    with _within(5.0), pytest.raises(ValueError, match=r"^sequence: expected words of at most 10 letters"):
        lie.quadratic_difference(tuple(range(16)))
    with pytest.raises(ValueError, match=r"^sequence: expected words of at most 10 letters"):
        lie.quadratic_difference((0, 1, 2, 3, 4, 5), orders=("palindromic", "forward"))
    with pytest.raises(ValueError, match=r"^orders: expected words of at most 10 letters"):
        lie.quadratic_difference(orders=(list(range(11)), "forward"))
    with pytest.raises(ValueError, match=r"^sequence: expected at most 1000 batch indices"):
        lie.quadratic_difference(range(10**9))
    assert time.perf_counter() - start < 2.0


def test_quadratic_difference_at_the_size_limit_is_exact():
    """Ten letters (a palindrome of five) at the limit: exact against the affine closed forms, within seconds."""
    rng = np.random.default_rng(4)
    with _within(10.0):
        q = lie.quadratic_difference((0, 1, 2, 3, 4), orders=("palindromic", "backward"))
    assert max(q.coefficients) == 10
    d = 2
    G = rng.normal(size=(5, d, d))
    H = G @ np.swapaxes(G, 1, 2) / d
    c, theta, h = rng.normal(size=(5, d)), rng.normal(size=d), 0.3
    Ap, bp = ct.QuadraticModel(H, c).sgd_maps(h / 2).word([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    Ab, bb = ct.QuadraticModel(H, c).sgd_maps(h).word([0, 1, 2, 3, 4])
    with _within(10.0):
        value = q.evaluate(H, c, theta, h)
    assert np.abs(value - ((Ap - Ab) @ theta + bp - bb)).max() <= 1e-12


def test_quadratic_difference_evaluate_reports_overflow():
    q = lie.quadratic_difference((0, 1, 2))
    H = np.stack([np.eye(2) * 1e200] * 3)
    with pytest.raises(ValueError, match=r"^lr: expected a learning rate and inputs for which the polynomial"):
        q.evaluate(H, np.ones((3, 2)), np.ones(2), 1.0)


_Q = lie.quadratic_difference((0, 1))
_H, _C, _TH = np.stack([np.eye(2)] * 2), np.zeros((2, 2)), np.zeros(2)

BAD_CALLS = [
    ("orders", ValueError, lambda: lie.quadratic_difference((0, 1), orders="forward")),
    ("orders", ValueError, lambda: lie.quadratic_difference((0, 1), orders=("forward",))),
    ("orders", ValueError, lambda: lie.quadratic_difference((0, 1), orders=5)),
    ("orders", ValueError, lambda: lie.quadratic_difference((0, 1), orders=("sideways", "forward"))),
    ("orders", TypeError, lambda: lie.quadratic_difference((0, 1), orders=(None, "forward"))),
    ("sequence", TypeError, lambda: lie.quadratic_difference((0.5, 1))),
    ("hessians", ValueError, lambda: _Q.evaluate(np.eye(2), _C, _TH, 0.1)),
    ("hessians", ValueError, lambda: _Q.evaluate(_H[:1], _C, _TH, 0.1)),
    ("hessians", TypeError, lambda: _Q.evaluate("H", _C, _TH, 0.1)),
    ("centers", ValueError, lambda: _Q.evaluate(_H, np.zeros((2, 3)), _TH, 0.1)),
    ("centers", ValueError, lambda: _Q.evaluate(_H, np.zeros(2), _TH, 0.1)),
    ("theta", ValueError, lambda: _Q.evaluate(_H, _C, np.zeros(3), 0.1)),
    ("theta", ValueError, lambda: _Q.evaluate(_H, _C, np.array([np.nan, 0.0]), 0.1)),
    ("lr", ValueError, lambda: _Q.evaluate(_H, _C, _TH, 0.0)),
    ("lr", TypeError, lambda: _Q.evaluate(_H, _C, _TH, "0.1")),
]


@pytest.mark.parametrize("name,exc,call", BAD_CALLS, ids=[f"{c[0]}-{k}" for k, c in enumerate(BAD_CALLS)])
def test_bad_input_names_the_argument(name, exc, call):
    with pytest.raises(exc, match=f"^{name}:"):
        call()
