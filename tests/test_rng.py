"""One randomness path: every draw of the library comes from the caller's ``rng``.

* Every public function of ``contraction`` that draws, called twice with the
  same ``rng``, gives bitwise equal results; with two different ``rng`` values
  the results differ. The list of such functions is written out, and checked to
  cover every public callable with an ``rng`` parameter.
* No library module calls ``default_rng`` (or ``SeedSequence``, ``RandomState``,
  ``np.random.seed``) with a constant: a fixed seed inside the library would be a
  stream the caller can neither see nor change.
"""

import ast
import dataclasses
import inspect
import pathlib

import numpy as np
import pytest

import contraction as ct

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY_FILES = sorted((ROOT / "contraction").rglob("*.py"))

CONTRACTIVE = ct.AffineMaps(
    0.5 * np.array([[[1.0, 0.3], [0.0, 0.8]], [[0.6, 0.0], [0.4, -0.9]]]), [[1.0, -1.0], [0.5, 2.0]]
)
# c = 1 (batch size 1 least squares): the average-contraction branch, which estimates the
# Lyapunov exponent and the spread of the law from streams spawned from the caller's rng
AVERAGE = ct.LinearRegressionModel(np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), np.array([1.0, 0.0, -1.0])
                                   ).sgd_maps(0.8)
HEAVY = ct.gaussian_least_squares_1d(200).sgd_maps(1.0)  # infinite variance: spread from forward runs
SAMPLES = np.linspace(-1.0, 1.0, 120).reshape(60, 2)

# Every public function that draws, with a call that exercises its draws.
DRAWING = {
    "chain_generators": lambda rng: [g.random(3) for g in ct.chain_generators(3, rng=rng)],
    "sample_batches": lambda rng: ct.sample_batches(4, 20, n_chains=3, rng=rng),
    "lyapunov_exponent": lambda rng: ct.lyapunov_exponent(CONTRACTIVE, rng=rng, n_steps=40, n_chains=3),
    "backward_fixed_point": lambda rng: [ct.backward_fixed_point(CONTRACTIVE, rng=rng, tol=1e-8),
                                         ct.backward_fixed_point(AVERAGE, rng=rng, tol=1e-6),
                                         ct.backward_fixed_point(HEAVY, rng=rng, tol=1e-3)],
    "stationary_samples": lambda rng: [ct.stationary_samples(AVERAGE, 5, rng=rng, tol=1e-6),
                                       ct.stationary_samples(AVERAGE, 5, method="forward", rng=rng)],
    "compare_laws": lambda rng: ct.compare_laws(SAMPLES, SAMPLES * [1.0, 0.3] + 0.2, rng=rng, n_projections=3),
    "log_cosh_maps": lambda rng: ct.log_cosh_maps(0.1, rng=rng).gradient(np.ones((3, 2)), np.arange(3)),
    "tail_index": lambda rng: float(ct.tail_index(ct.AffineMaps([0.5 * np.eye(2), 2.0 * np.eye(2)], np.ones((2, 2)),
                                                          probs=[0.75, 0.25]), rng=rng, n_steps=10, n_chains=8)),
    "digits_random_features": lambda rng: [ct.digits_random_features(n_features=8, n_rows=40, rng=rng),
                                           ct.digits_random_features(6, kind="fourier", n_rows=30, rng=rng)],
    "power_law_regression": lambda rng: ct.power_law_regression(n_rows=50, n_features=8, rng=rng),
}


def _takes_rng(obj):
    try:
        return "rng" in inspect.signature(obj).parameters
    except (TypeError, ValueError):  # builtins without a signature
        return False


def _leaves(result):
    """The numbers of a result, as a list of arrays (records field by field)."""
    if dataclasses.is_dataclass(result):
        return _leaves([getattr(result, f.name) for f in dataclasses.fields(result)])
    if isinstance(result, (list, tuple)):
        return [leaf for item in result for leaf in _leaves(item)]
    if isinstance(result, str):
        return [np.array([result])]
    return [np.asarray(result)]


def _same(x, y):
    """Bitwise equal arrays (``nan`` equal to ``nan``)."""
    numeric = x.dtype.kind in "fc" and y.dtype.kind in "fc"
    return x.shape == y.shape and np.array_equal(x, y, equal_nan=numeric)


def _equal(a, b):
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(_same(x, y) for x, y in zip(la, lb, strict=True))


def test_the_list_covers_every_public_callable_with_an_rng_parameter():
    with_rng = {name for name in ct.__all__ if callable(getattr(ct, name)) and _takes_rng(getattr(ct, name))}
    assert set(DRAWING) == with_rng


@pytest.mark.parametrize("name", sorted(DRAWING))
def test_same_rng_same_result_bit_for_bit(name):
    call = DRAWING[name]
    assert _equal(call(7), call(7))
    assert _equal(call(np.random.default_rng(7)), call(np.random.default_rng(7)))


@pytest.mark.parametrize("name", ["sample_batches", "lyapunov_exponent", "compare_laws", "log_cosh_maps"])
def test_a_seed_sequence_is_a_seed_too(name):
    call = DRAWING[name]
    assert _equal(call(np.random.SeedSequence(7)), call(np.random.SeedSequence(7)))
    assert not _equal(call(np.random.SeedSequence(7)), call(np.random.SeedSequence(8)))


@pytest.mark.parametrize("name", sorted(DRAWING))
def test_different_rng_different_result(name):
    call = DRAWING[name]
    assert not _equal(call(7), call(8))
    assert not _equal(call(np.random.default_rng(7)), call(np.random.default_rng(8)))


def test_a_seed_and_its_generator_give_the_same_streams():
    """``rng=7`` and ``rng=default_rng(7)`` are the same source: sub-tasks spawn from it in the same order."""
    for maps in (CONTRACTIVE, AVERAGE, HEAVY):
        assert _equal(ct.backward_fixed_point(maps, rng=7, tol=1e-3),
                      ct.backward_fixed_point(maps, rng=np.random.default_rng(7), tol=1e-3))
    assert _equal(ct.stationary_samples(AVERAGE, 4, method="forward", rng=7),
                  ct.stationary_samples(AVERAGE, 4, method="forward", rng=np.random.default_rng(7)))


def test_average_contraction_estimates_come_from_the_callers_rng():
    """The error bound under average contraction uses the spawned streams, not a fixed seed."""
    bounds = {ct.backward_fixed_point(HEAVY, rng=r, tol=1e-3).error_bound for r in (1, 2, 3)}
    assert len(bounds) == 3


def test_backward_fixed_point_draws_the_sequence_of_sample_batches():
    """Chain 0 of ``sample_batches(rng=r)`` is the sequence of ``backward_fixed_point(rng=r)``."""
    res = ct.backward_fixed_point(AVERAGE, rng=11, tol=1e-9)
    idx = ct.sample_batches(AVERAGE.n_maps, res.n_steps + 60, probs=AVERAGE.probs, rng=11)
    far = ct.backward_iterates(AVERAGE, [3.0, -3.0], idx, save_steps=[res.n_steps + 60])
    assert np.linalg.norm(far[0, 0] - res.x) < 1e-7


def _constant(node):
    return isinstance(node, ast.Constant) or (
        isinstance(node, ast.UnaryOp) and isinstance(node.operand, ast.Constant))


SEEDING = {"default_rng", "SeedSequence", "RandomState", "seed", "PCG64", "MT19937", "Philox", "SFC64"}


def _fixed_seeds(tree):
    """Calls such as ``default_rng(0)``, ``default_rng()``, ``np.random.seed(1)`` in code (docstrings are not code)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in SEEDING:
            continue
        if name == "seed" and not (isinstance(func, ast.Attribute) and ast.unparse(func.value).endswith("random")):
            continue
        args = list(node.args) + [k.value for k in node.keywords if k.arg in ("seed", "entropy")]
        if not args or any(_constant(a) for a in args):
            yield f"line {node.lineno}: {ast.unparse(node)}"


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=[str(p.relative_to(ROOT)) for p in LIBRARY_FILES])
def test_no_constant_seed_in_library_code(path):
    found = list(_fixed_seeds(ast.parse(path.read_text(encoding="utf-8"))))
    assert not found, found


def test_the_seed_scan_finds_constant_seeds():
    code = ("import numpy as np\nrng = np.random.default_rng(0)\ng = default_rng()\nnp.random.seed(3)\n"
            "ok = default_rng(rng)\n")
    assert len(list(_fixed_seeds(ast.parse(code)))) == 3
