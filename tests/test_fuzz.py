"""Fuzz suite: every public function and class, fed valid and invalid input.

Each call must either return finite, correctly shaped output or raise
``ValueError`` / ``TypeError`` (the package's own errors derive from them,
and ``DivergenceError`` reports an overflow) with a message that starts with
the name of an argument. Any other exception, a hang (a per-call alarm) or a
blow-up in memory (an address-space limit) fails.

The default profile draws a few examples per target; the thorough run is::

    HYPOTHESIS_PROFILE=fuzz python -m pytest tests/test_fuzz.py -p no:cacheprovider

(500 examples per target; the counts are printed at the end of the run).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import inspect
import re
import resource
import warnings

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from limits import time_limit

import contraction as ct
import contraction.lie as lie

CALL_SECONDS = 20.0
OUTCOMES: collections.Counter = collections.Counter()

# --- the harness ---------------------------------------------------------------------------------




@pytest.fixture(scope="module", autouse=True)
def address_space_limit():
    """Cap virtual memory 4 GiB above the current size, so a blow-up fails fast instead of swapping."""
    with open("/proc/self/status") as fh:
        vm = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = vm + 4 * 2**30
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _argument_names():
    names = set()
    for mod in (ct, lie):
        for name in mod.__all__:
            obj = getattr(mod, name)
            targets = [obj]
            if inspect.isclass(obj):
                targets += [m for _, m in inspect.getmembers(obj, inspect.isfunction)]
            for t in targets:
                with contextlib.suppress(TypeError, ValueError):
                    names |= set(inspect.signature(t).parameters)
    return names - {"self", "args", "kwargs"}


ARGUMENTS = _argument_names()
_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)")


def _check_finite(value, where="result"):
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc":
            assert np.all(np.isfinite(value)), f"{where}: silent non-finite output"
    elif isinstance(value, float | np.floating):
        assert np.isfinite(value), f"{where}: silent non-finite output {value!r}"
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _check_finite(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, tuple | list) and len(value) < 10_000:
        for i, v in enumerate(value):
            _check_finite(v, f"{where}[{i}]")


def outcome(fn, *args, **kwargs):
    """Call ``fn`` under the rules above; returns the result or None when it raised a clear error."""
    try:
        with time_limit(CALL_SECONDS), warnings.catch_warnings():
            warnings.simplefilter("ignore", ct.NonConvergenceWarning)  # reported, not silent
            warnings.simplefilter("ignore", DeprecationWarning)
            result = fn(*args, **kwargs)
    except ct.DivergenceError:
        OUTCOMES["divergence reported"] += 1
        return None
    except (ValueError, TypeError) as exc:
        match = _PREFIX.match(str(exc))
        assert match and match.group(1) in ARGUMENTS, f"error does not name an argument: {type(exc).__name__}: {exc}"
        OUTCOMES["clear error"] += 1
        return None
    _check_finite(result)
    OUTCOMES["finite result"] += 1
    return result


# --- strategies --------------------------------------------------------------------------------

small_floats = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
odd_scalars = st.one_of(
    st.none(), st.booleans(), st.text(max_size=3), st.just(np.nan), st.just(np.inf), st.just(-1.0),
    st.just(0), st.just(-3), st.integers(10**7, 10**13), st.just(np.float32(0.25)), st.just(np.int64(2)),
    st.just(1e308), st.just([]), st.just(object()), st.just(2.5),
)
odd_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.int64, np.bool_, np.complex128, np.float32]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    elements=None,
)
odd = st.one_of(odd_scalars, odd_arrays)
rngs = st.one_of(st.integers(0, 2**32 - 1), st.none(), st.just(np.random.PCG64(0)),
                 st.just(np.random.SeedSequence(5)), st.builds(np.random.default_rng, st.integers(0, 99)),
                 st.just(True), st.just(-1), st.just("seed"), st.just(1.5))


@st.composite
def valid_maps(draw, max_dim=3, max_maps=3):
    d = draw(st.integers(1, max_dim))
    m = draw(st.integers(1, max_maps))
    A = draw(hnp.arrays(np.float64, (m, d, d), elements=small_floats))
    c = draw(st.floats(0.05, 1.3))
    norms = np.linalg.norm(A, 2, axis=(1, 2))
    assume(np.all(norms > 1e-3))
    A = A * (c / norms)[:, None, None]
    b = draw(hnp.arrays(np.float64, (m, d), elements=small_floats))
    return ct.AffineMaps(A, b)


def maybe(valid, p_odd=True):
    """Mostly the valid strategy, sometimes an odd value."""
    return st.one_of(valid, valid, valid, odd) if p_odd else valid


@st.composite
def maps_and_start(draw):
    maps = draw(valid_maps())
    theta0 = draw(maybe(hnp.arrays(np.float64, (maps.dim,), elements=small_floats)))
    n = draw(st.integers(0, 6))
    chains = draw(st.integers(1, 3))
    idx = draw(maybe(hnp.arrays(np.int64, (chains, n), elements=st.integers(0, maps.n_maps - 1))))
    return maps, theta0, idx


# --- targets -------------------------------------------------------------------------------------


@given(A=maybe(hnp.arrays(np.float64, (2, 2, 2), elements=small_floats)),
       b=maybe(hnp.arrays(np.float64, (2, 2), elements=small_floats)), probs=st.one_of(st.none(), odd))
def test_affine_maps(A, b, probs):
    OUTCOMES["examples"] += 1
    maps = outcome(ct.AffineMaps, A, b, probs)
    if maps is not None:
        outcome(maps.apply, np.zeros(2), 1)
        outcome(maps.word, [])
        outcome(maps.word, [0, 1, 1])


@given(case=maps_and_start(), x=odd, index=st.one_of(st.integers(-2, 4), odd))
def test_maps_methods(case, x, index):
    OUTCOMES["examples"] += 1
    maps, theta0, _ = case
    outcome(maps.apply, theta0, index)
    outcome(maps.apply, x, 0)
    outcome(maps.word, x)
    outcome(maps.compose, x)
    outcome(maps.compose, maps)


@given(case=maps_and_start(), save=st.one_of(st.none(), st.just([0]), st.just("last"), odd))
def test_iterates(case, save):
    OUTCOMES["examples"] += 1
    maps, theta0, idx = case
    for fn in (ct.forward_iterates, ct.backward_iterates):
        out = outcome(fn, maps, theta0, idx, save_steps=save)
        if out is not None:
            assert out.ndim == 3 and out.shape[-1] == maps.dim


@given(case=maps_and_start(), window=st.one_of(st.integers(1, 4), odd))
def test_approximations(case, window):
    OUTCOMES["examples"] += 1
    maps, theta0, idx = case
    for fn in (ct.windowed_backward_iterates, ct.sliding_backward_iterates):
        outcome(fn, maps, theta0, idx, window)


@given(n_batches=maybe(st.integers(1, 5)), n_steps=maybe(st.integers(0, 8)), n_chains=maybe(st.integers(1, 4)),
       scheme=st.sampled_from(["iid", "reshuffle", "other", 3]), probs=st.one_of(st.none(), odd), rng=rngs)
def test_sample_batches(n_batches, n_steps, n_chains, scheme, probs, rng):
    OUTCOMES["examples"] += 1
    out = outcome(ct.sample_batches, n_batches, n_steps, n_chains, scheme, probs, rng)
    if out is not None:
        assert out.shape == (n_chains, n_steps)


@given(n=maybe(st.integers(1, 5)), rng=rngs)
def test_chain_generators(n, rng):
    OUTCOMES["examples"] += 1
    outcome(ct.chain_generators, n, rng)


@given(maps=maybe(valid_maps()), rng=rngs, tol=maybe(st.floats(1e-12, 1e-3)), max_steps=maybe(st.integers(1, 3000)))
def test_fixed_point(maps, rng, tol, max_steps):
    OUTCOMES["examples"] += 1
    outcome(ct.backward_fixed_point, maps, None, rng, tol, max_steps)


@given(maps=maybe(valid_maps()), n=maybe(st.integers(0, 20)), theta0=odd)
def test_moments(maps, n, theta0):
    OUTCOMES["examples"] += 1
    outcome(ct.stationary_moments, maps)
    outcome(ct.stationary_mean_squared_increment, maps)
    outcome(ct.contraction_constant, maps)
    outcome(ct.mean_square_radius, maps)
    outcome(ct.tail_index, maps)
    if isinstance(maps, ct.AffineMaps):
        outcome(ct.moments_at_step, maps, np.zeros(maps.dim), n)
        outcome(ct.backward_distance_squared, maps, np.zeros(maps.dim), n)
        outcome(ct.moments_at_step, maps, theta0, 3)


@given(maps=maybe(valid_maps()), rng=rngs, n_steps=maybe(st.integers(1, 200)), n_chains=maybe(st.integers(1, 8)))
def test_lyapunov(maps, rng, n_steps, n_chains):
    OUTCOMES["examples"] += 1
    outcome(ct.lyapunov_exponent, maps, rng, n_steps, n_chains, 5)


@given(maps=maybe(valid_maps(max_dim=2)), n=maybe(st.integers(1, 40)), rng=rngs,
       method=st.sampled_from(["backward", "forward", "other"]))
def test_stationary_samples(maps, n, rng, method):
    OUTCOMES["examples"] += 1
    outcome(ct.stationary_samples, maps, n, method, rng, max_steps=2000)


@given(x=maybe(hnp.arrays(np.float64, st.integers(0, 30), elements=small_floats)),
       y=maybe(hnp.arrays(np.float64, st.integers(0, 30), elements=small_floats)), rng=rngs,
       k=maybe(st.integers(1, 10)))
def test_laws(x, y, rng, k):
    OUTCOMES["examples"] += 1
    outcome(ct.compare_laws, x, y, rng)
    outcome(ct.wasserstein_1d, x, y)
    outcome(ct.ks_against_cdf, x, lambda u: np.clip((u + 1) / 2, 0, 1))
    outcome(ct.hill_estimator, x, k)
    outcome(ct.loglog_slope, x, y)


@given(H=maybe(hnp.arrays(np.float64, (2, 2, 2), elements=small_floats)),
       c=maybe(hnp.arrays(np.float64, (2, 2), elements=small_floats)), lr=maybe(st.floats(1e-3, 3)), v=odd)
def test_quadratic_model(H, c, lr, v):
    OUTCOMES["examples"] += 1
    if isinstance(H, np.ndarray) and H.shape == (2, 2, 2):
        H = H @ np.swapaxes(H, 1, 2)
    model = outcome(ct.QuadraticModel, H, c)
    if model is not None:
        outcome(model.sgd_maps, lr)
        outcome(model.gradient, v, 0)
        outcome(model.gradient, np.zeros(2), v)
        outcome(model.hvp, v, np.ones(2), 0)
        outcome(model.loss, v)
        outcome(ct.max_stable_lr, model)


@given(X=maybe(hnp.arrays(np.float64, (4, 2), elements=small_floats)),
       y=maybe(hnp.arrays(np.float64, (4,), elements=small_floats)), B=maybe(st.sampled_from([1, 2, 4, 3])),
       lr=maybe(st.floats(1e-3, 3)))
def test_linear_regression(X, y, B, lr):
    OUTCOMES["examples"] += 1
    model = outcome(ct.LinearRegressionModel, X, y, B)
    if model is not None:
        outcome(model.sgd_maps, lr)
        outcome(model.gradient_maps, lr)


@given(lr=maybe(st.floats(1e-3, 3)), points=odd)
def test_examples(lr, points):
    OUTCOMES["examples"] += 1
    outcome(ct.two_point_cdf, lr)
    outcome(ct.gaussian_lyapunov_1d, lr)
    outcome(ct.log_cosh_maps, lr)
    outcome(ct.mean_estimation, points)


@given(text=st.one_of(st.text(max_size=40), st.sampled_from([
    "x**2 + y", "sqrt(10**299)**1000", "*".join(["sqrt(10**299)**1000"] * 60), "+".join(["x"] * 300),
    "__import__('os')", "x" * 5000, "exp(exp(exp(x)))", "1/0", "log(0*x)", "(((((x)))))" * 40,
])))
def test_parse_loss(text):
    OUTCOMES["examples"] += 1
    outcome(lie.parse_loss, text, ["x", "y"])


@given(seq=st.one_of(st.lists(st.integers(-1, 3), max_size=20), odd),
       order=st.sampled_from(["forward", "backward", "palindromic", "sideways", 3]), h_order=maybe(st.integers(1, 5)))
def test_lie_words(seq, order, h_order):
    OUTCOMES["examples"] += 1
    outcome(lie.order_word, order, seq)
    outcome(lie.formal_composition, order, seq, h_order=h_order)
    outcome(lie.quadratic_difference, seq)


@given(n=maybe(st.integers(1, 4)))
def test_implicit_regulariser(n):
    OUTCOMES["examples"] += 1
    outcome(lie.implicit_regulariser, n)
