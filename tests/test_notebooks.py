"""Every teaching notebook executes from a clean kernel, shows its figures and labels what it prints.

The notebooks run as Jupyter runs them: a fresh ipykernel on this interpreter (``sys.executable``, the
environment where ``contraction`` is installed, whatever kernels the machine has registered), with the
inline matplotlib backend that ipykernel selects when nothing forces a backend (named in the kernel spec,
so that an ``MPLBACKEND`` set for the test process does not leak into the kernel).

Two rules on what the executed notebooks show:

* **Figures.** A code cell *plots* when its source calls a method of ``plt``, of a figure or of axes
  (``plt.plot(``, ``fig.suptitle(``, ``axes[0].semilogy(``: see ``PLOTTING``). Every plotting cell must
  produce at least one ``image/png`` output. A notebook that forces a non-interactive backend
  (``matplotlib.use("Agg")``) shows no figure and fails.
* **Labels.** The printed text of a cell (its stdout, all stream outputs joined in order) and the
  ``text/plain`` of each result that is not a figure are read line by line. A line is *bare* when no
  letter is left once numbers and repr words (``array``, ``dtype``, ``True``, ``None``, ``nan``, ...:
  see ``REPR_WORDS``) are removed: ``4 0.0``, ``[[1. 0.]``, ``{}``, ``True``, ``(array([0.5]), 2)``. A
  bare line fails unless it continues a labelled print: it lies inside brackets opened on an earlier
  line (the rows of a matrix) or directly follows a line that ends with ``:`` (a header such as
  ``exact covariance:``). A matrix is printed under a label line or after a label on its first line; a
  number never stands alone. stderr (warnings) is not read.
"""

import json
import pathlib
import re
import sys

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

KERNEL = "contraction-notebooks"
INLINE = "module://matplotlib_inline.backend_inline"

# a call of a method of pyplot, of a figure or of axes (also indexed: axes[0].plot(...))
PLOTTING = re.compile(r"\b(?:plt|fig\w*|ax|axs|axes|ax\d+)(?:\[[^\]]*\])*\.\w+\(")
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
REPR_WORDS = re.compile(r"\b(?:array|dtype|np|numpy|float\d*|int\d*|complex\d*|bool_?|True|False|None|nan|inf"
                        r"|Fraction)\b")
LETTER = re.compile(r"[^\W\d_]")


def is_plotting_cell(source: str) -> bool:
    """Whether a code cell draws or shows a matplotlib figure."""
    return PLOTTING.search(source) is not None


def is_labelled(line: str) -> bool:
    """Whether a line says what it prints: a letter is left once numbers and repr words are removed."""
    rest = REPR_WORDS.sub(" ", NUMBER.sub(" ", line))
    return LETTER.search(rest) is not None


def unlabelled_lines(text: str) -> list[str]:
    """The bare lines of one printed text that continue no labelled print (see the module docstring)."""
    bad, depth, after_header = [], 0, False
    for line in text.splitlines():
        if not line.strip():
            after_header = False
            continue
        labelled = is_labelled(line)
        if not labelled and depth == 0 and not after_header:
            bad.append(line)
        depth = max(0, depth + sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}"))
        after_header = labelled and line.rstrip().endswith(":")
    return bad


def cells_missing_figures(nb) -> list[int]:
    """Indices of the plotting code cells of an executed notebook that produced no ``image/png`` output."""
    return [i for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" and is_plotting_cell(cell.source)
            and not any("image/png" in out.get("data", {}) for out in cell.outputs)]


def bare_prints(nb) -> list[tuple[int, str]]:
    """``(cell index, line)`` for every unlabelled printed line of an executed notebook."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        stdout = "".join(out.text for out in cell.outputs if out.output_type == "stream" and out.name == "stdout")
        texts = [stdout] + [out.data["text/plain"] for out in cell.outputs
                            if out.output_type in ("execute_result", "display_data")
                            and "text/plain" in out.data and "image/png" not in out.data]
        found += [(i, line) for text in texts for line in unlabelled_lines(text)]
    return found


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory):
    """A kernel spec for this interpreter with Jupyter's default (inline) matplotlib backend."""
    spec = tmp_path_factory.mktemp("kernels")
    (spec / KERNEL).mkdir()
    (spec / KERNEL / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "contraction (tests)",
        "language": "python",
        "env": {"MPLBACKEND": INLINE},
    }))
    return spec


def execute(nb, kernel_dir, cwd):
    """Run a notebook in place on a fresh kernel; return it."""
    km = AsyncKernelManager(kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(cwd)}})
    client.execute(cleanup_kc=True)  # shut the kernel down although the client did not create its manager
    return nb


@pytest.fixture(scope="module")
def executed(kernel_dir, tmp_path_factory):
    """Each notebook executed once for all the tests of this module."""
    cache = {}

    def run(path):
        if path not in cache:
            cache[path] = execute(nbformat.read(path, as_version=4), kernel_dir, tmp_path_factory.mktemp(path.stem))
        return cache[path]
    return run


def test_there_are_teaching_notebooks():
    assert len(NOTEBOOKS) >= 2
    assert any(is_plotting_cell(c.source) for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells
               if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), \
        "commit notebooks without outputs"
    forced = [c.source for c in code if re.search(r"matplotlib\.use\(|%matplotlib\s+(?!inline)", c.source)]
    assert not forced, "a notebook must not force a matplotlib backend"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, executed):
    nb = executed(path)
    errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_plotting_cells_show_figures(path, executed):
    assert cells_missing_figures(executed(path)) == [], "plotting cells without an image/png output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_printed_numbers_are_labelled(path, executed):
    assert bare_prints(executed(path)) == [], "unlabelled printed lines (cell index, line)"


def test_forced_agg_backend_is_caught(kernel_dir, tmp_path):
    """The figure check sees a backend switched to Agg: the second cell shows nothing."""
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"),
        nbformat.v4.new_code_cell('import matplotlib\nmatplotlib.use("Agg")\nplt.plot([1, 0])\nplt.show()'),
        nbformat.v4.new_code_cell("print(4, 0.0)\nprint('step 4:', 0.0)"),
    ])
    nb = execute(nb, kernel_dir, tmp_path)
    assert cells_missing_figures(nb) == [1]
    assert bare_prints(nb) == [(2, "4 0.0")]


@pytest.mark.parametrize("source, plots", [
    ("plt.plot(x)", True),
    ("fig, ax = plt.subplots()", True),
    ("axes[0].semilogy(y)", True),
    ("ax2.hist(z)", True),
    ("fig.suptitle('t')", True),
    ("import matplotlib.pyplot as plt", False),
    ("np.max(np.abs(x), axis=1)", False),
    ("maps.A[idx, 0, 0]", False),
])
def test_plotting_cells_are_recognised(source, plots):
    assert is_plotting_cell(source) is plots


@pytest.mark.parametrize("text, bad", [
    ("4 0.0\n6 0.98", ["4 0.0", "6 0.98"]),
    ("[[1. 0.]\n [0. 1.]]", ["[[1. 0.]"]),
    ("mean bracket terms: {}", []),
    ("{}", ["{}"]),
    ("True", ["True"]),
    ("(array([0.5, 0.5]), array([ 0.5, -0.5]))", ["(array([0.5, 0.5]), array([ 0.5, -0.5]))"]),
    ("np.float64(0.6)", ["np.float64(0.6)"]),
    ("-2.5e-16", ["-2.5e-16"]),
    ("step 4: |θ̃_n − θ̃_(n−1)| = 0.0", []),
    ("exact covariance:\n[[ 0.01  0.005]\n [ 0.005  0.006]]", []),
    ("exact covariance [[ 0.01  0.005]\n [ 0.005  0.006]]", []),
    ("exact covariance:\n0.5\n0.25", ["0.25"]),
    ("residual 1e-16\n[[1. 0.]\n [0. 1.]]", ["[[1. 0.]"]),
    ("h=0.500  γ=-0.482  α=2.970", []),
])
def test_bare_print_rule(text, bad):
    assert unlabelled_lines(text) == bad
