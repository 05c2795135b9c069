import subprocess
import sys

from contraction.cli import main
from contraction.figures import FIGURES


def test_reproduce_writes_every_figure(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) == 0
    for name in FIGURES:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert not list(tmp_path.glob("*.tmp*"))


def test_compare_prints_both_orders(capsys):
    assert main(["compare", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "forward" in out and "backward" in out and len(out.splitlines()) == 7


def test_bad_cli_input_is_a_clear_error(capsys):
    assert main(["compare", "--lr", "-1"]) == 2
    assert "lr:" in capsys.readouterr().err


def test_python_dash_m_runs_the_same_command():
    out = subprocess.run([sys.executable, "-m", "contraction", "compare", "--steps", "2"], capture_output=True,
                         text=True, check=True).stdout
    assert "backward" in out
    out = subprocess.run([sys.executable, "-m", "proofs_checks", "--quick", "--only", "C2"], capture_output=True,
                         text=True, check=True).stdout
    assert "1 passed, 0 failed" in out
