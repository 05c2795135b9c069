"""The shape of the code, enforced: lint, import layers, docstrings, module size, private names.

These run the same tools a developer runs (``ruff check``, ``lint-imports``,
``numpydoc.validate``) so that the README's test command, and therefore CI,
fails on a finding.
"""

import ast
import inspect
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "contraction"
LIBRARY_FILES = sorted(PACKAGE.rglob("*.py"))
CHECK_FILES = sorted((ROOT / "proofs_checks").glob("*.py"))

# numpydoc codes not required, with the reason:
NUMPYDOC_IGNORED = {
    "SA01",  # a See Also section is optional
    "ES01",  # an extended summary is optional: many objects are defined by one equation in the summary
}
# For records, warnings and errors (classes users receive rather than build), fields are documented
# under Attributes, and an Examples section is optional.
RECORD_IGNORED = NUMPYDOC_IGNORED | {"PR01", "PR02", "EX01"}
MAX_MODULE_LINES = 600


def _tool(name):
    """Path of a console script installed beside this interpreter (the test extra installs it)."""
    path = pathlib.Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name)


def _run(cmd):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing():
    exe = _tool("ruff")
    assert exe, "ruff is not installed: pip install -e '.[test]'"
    res = _run([exe, "check", "contraction", "proofs_checks", "tests", "benchmarks"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_import_layers_hold():
    """The layer contracts of pyproject.toml: no upward import, no cycle, checks never import the face."""
    exe = _tool("lint-imports")
    assert exe, "import-linter is not installed: pip install -e '.[test]'"
    res = _run([exe, "--no-cache"])
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]


PUBLIC_MODULES = ("contraction", "contraction.lie", "contraction.nn", "contraction.experiments",
                  "contraction.figures", "contraction.plotting")


def _public_objects():
    import importlib

    for module in PUBLIC_MODULES:
        mod = importlib.import_module(module)
        names = mod.__all__
        for name in names:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{module}.{name}", obj


def _is_record(obj):
    return inspect.isclass(obj) and (
        issubclass(obj, (Warning, Exception))
        or (hasattr(obj, "__dataclass_fields__") and "Attributes" in (inspect.getdoc(obj) or ""))
    )


PUBLIC = sorted(_public_objects())


@pytest.mark.parametrize("qualname,obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_numpydoc_sections(qualname, obj):
    """Every public function and class has a numpydoc docstring with Parameters and Returns."""
    import numpydoc.validate

    ignored = RECORD_IGNORED if _is_record(obj) else NUMPYDOC_IGNORED
    errors = [(code, msg) for code, msg in numpydoc.validate.validate(qualname)["errors"] if code not in ignored]
    assert not errors, errors


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=[str(p.relative_to(ROOT)) for p in LIBRARY_FILES])
def test_modules_are_small(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {n} lines: split it along its jobs"


def _imports(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node, node.module or "", [a.name for a in node.names], node.level
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node, a.name, [], 0


@pytest.mark.parametrize("path", CHECK_FILES, ids=[p.name for p in CHECK_FILES])
def test_checks_use_only_the_public_api(path):
    """proofs_checks imports no private module or private name of contraction."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for node, module, names, level in _imports(tree):
        if level or not module.startswith("contraction"):
            continue
        parts = module.split(".")
        if any(p.startswith("_") for p in parts) or any(n.startswith("_") for n in names):
            bad.append(f"line {node.lineno}: {module} {names}")
    assert not bad, bad


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=[str(p.relative_to(ROOT)) for p in LIBRARY_FILES])
def test_no_function_local_import_of_the_package(path):
    """A function-local import of a contraction module would hide a cycle; only third-party ones may be lazy."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node, module, _, level in _imports(func):
            if level or module.split(".")[0] in ("contraction", "proofs_checks"):
                bad.append(f"line {node.lineno} in {func.name}: {'.' * level}{module}")
    # the package's __getattr__ loads the heavy subpackages (sympy, matplotlib) on first use
    if path == PACKAGE / "__init__.py":
        bad = [b for b in bad if "in __getattr__" not in b]
    assert not bad, bad


def test_python_dash_m_proofs_checks_does_not_import_the_cli():
    code = ("import sys, runpy; sys.argv = ['x', '--quick', '--only', 'C2']\n"
            "try:\n    runpy.run_module('proofs_checks', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "print('cli' if 'contraction.cli' in sys.modules else 'no-cli', code)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.stdout.strip().splitlines()[-1] == "no-cli 0", res.stdout + res.stderr
