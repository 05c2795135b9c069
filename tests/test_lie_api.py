"""contraction.lie as a package: its public surface, its documentation, and modules without import cycles."""

import ast
import dataclasses
import importlib
import pathlib

import numpydoc.validate
import pytest

import contraction as ct
from contraction import lie

LIE_DIR = pathlib.Path(lie.__file__).parent
MODULES = sorted(p.stem for p in LIE_DIR.glob("*.py") if p.stem != "__init__")

# The names contraction.lie has always exported; each stays importable from it.
OLD_NAMES = [
    "BracketStep", "Expansion", "FormalSeries", "ImplicitRegulariser", "LeadingError", "NumericFunction",
    "QuadraticPolynomial", "SGDSteps", "SecondOrderStructure", "bracket", "bracket_corrected_step",
    "composition", "formal_composition", "gradient", "hessian", "implicit_regulariser", "lambdify",
    "leading_error", "loglog_slope", "modified_flow", "order_difference", "order_word", "parse_loss",
    "quadratic_difference", "second_order_structure",
]


def test_every_old_name_is_exported_in_a_sorted_all():
    assert lie.__all__ == sorted(lie.__all__)
    assert set(OLD_NAMES) <= set(lie.__all__)
    for name in lie.__all__:
        assert getattr(lie, name).__doc__, name
    assert ct.lie is lie
    from contraction.approximations import BracketStep, bracket_corrected_step
    from contraction.core._fitting import loglog_slope

    assert (lie.BracketStep, lie.bracket_corrected_step, lie.loglog_slope) == (
        BracketStep, bracket_corrected_step, loglog_slope)


def test_init_holds_only_a_docstring_the_reexports_and_all():
    tree = ast.parse((LIE_DIR / "__init__.py").read_text(encoding="utf-8"))
    first, *rest = tree.body
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and ast.get_docstring(tree)
    imported = set()
    for node in rest:
        if isinstance(node, ast.ImportFrom):
            imported.update(a.asname or a.name for a in node.names)
        else:
            assert isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["__all__"], ast.dump(node)[:80]
    assert imported == set(lie.__all__)


def _internal_imports(module):
    """The lie modules that ``module`` imports (relative ``from . import x`` / ``from ._x import``)."""
    tree = ast.parse((LIE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("contraction.lie."):
            out.add(node.module.split(".")[2])
    return out & set(MODULES)


def test_lie_modules_form_no_import_cycle():
    graph = {m: _internal_imports(m) for m in MODULES}
    order, done = [], set()
    while len(done) < len(graph):  # peel off the modules whose imports are all done
        ready = [m for m in graph if m not in done and graph[m] <= done]
        assert ready, f"import cycle among {sorted(set(graph) - done)}: {graph}"
        done.update(ready)
        order.extend(sorted(ready))
    assert order[:2] == ["_parser", "_trees"]  # the leaves: parsing and pure combinatorics


@pytest.mark.parametrize("module", MODULES)
def test_each_module_has_one_documented_job_and_a_sorted_all(module):
    mod = importlib.import_module(f"contraction.lie.{module}")
    assert mod.__doc__ and len((LIE_DIR / f"{module}.py").read_text(encoding="utf-8").splitlines()) <= 600
    assert list(mod.__all__) == sorted(mod.__all__)


OWN_NAMES = [n for n in lie.__all__ if getattr(lie, n).__module__.startswith("contraction.lie")]


@pytest.mark.parametrize("name", OWN_NAMES)
def test_numpydoc_parameters_and_returns(name):
    """Every public name of the lie modules passes numpydoc validation (See Also and extended summary optional)."""
    obj = getattr(lie, name)
    report = numpydoc.validate.validate(f"contraction.lie.{name}")
    errors = [e for e in report["errors"] if e[0] not in {"SA01", "ES01"}]
    assert not errors, errors
    section = "Attributes" if dataclasses.is_dataclass(obj) else "Parameters"  # records list their fields
    assert f"{section}\n    ----------" in obj.__doc__ and "Examples\n    --------" in obj.__doc__
