"""The command line as a newcomer meets it: one-line errors that name the flag, exit statuses, Ctrl-C, the JSON.

The commands are run as a user runs them, ``python -m contraction ...`` in a
fresh folder, several at a time; the printing of an experiment's outcomes is
driven in-process with a stand-in run.
"""

import argparse
import dataclasses
import json
import os
import pathlib
import re
import select
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest

import proofs_checks
from contraction import __version__, _cli_commands
from contraction._cli_support import flag_message
from contraction.cli import build_parser, main
from contraction.core._io import hold_folder
from contraction.figures import FIGURES

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "verify.schema.json").read_text(encoding="utf-8"))


def _default_sigint():
    """In the child: Ctrl-C raises KeyboardInterrupt even when this test runs with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "contraction", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _run(args, cwd):
    proc = _start(args, cwd)
    out, err = proc.communicate(timeout=300)
    return SimpleNamespace(rc=proc.returncode, out=out, err=err)


# (flag named by the one-line message, exit status, arguments); each runs as its own process.
USAGE_ERRORS = {
    "json-unwritable": ("--json", 2, ["verify", "--only", "C1", "--json", "/proc/x/v.json"]),
    "figures-is-a-file": ("--figures", 2, ["verify", "--only", "C1", "--figures", "afile"]),
    "reproduce-unwritable": ("--out", 2, ["reproduce", "--out", "/proc/x"]),
    "experiment-out-is-a-file": ("--out", 2, ["experiment", "nn", "--out", "afile"]),
    "json-is-a-folder": ("--json", 2, ["verify", "--json", "adir"]),
    "negative-steps": ("--steps", 2, ["compare", "--steps", "-3"]),
    "zero-batch-size": ("--batch-size", 2, ["experiment", "nn", "--batch-size", "0"]),
    "unknown-claim": ("--only", 2, ["verify", "--only", "C99"]),
    "unknown-figure": ("--only", 2, ["reproduce", "--only", "foo"]),
    "compare-overflows": ("", 1, ["compare", "--lr", "3", "--steps", "2000"]),
    "experiment-diverges": ("", 1, ["experiment", "nn", "--lr", "50"]),
}
OTHER = {
    "compare-grows": ["compare", "--lr", "3", "--steps", "5"],
    "reproduce-by-name": ["reproduce", "--quick", "--only", "trajectories", "trajectories.png", "--out", "figs"],
    "verify-once": ["verify", "--quick", "--only", "C1", "c1"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every command above, run at once (a few at a time) in one fresh folder."""
    cwd = tmp_path_factory.mktemp("cli")
    (cwd / "afile").write_text("not a folder")
    (cwd / "adir").mkdir()
    commands = {key: args for key, (_, _, args) in USAGE_ERRORS.items()} | OTHER
    slow_first = sorted(commands, key=lambda k: k not in ("experiment-diverges", "reproduce-by-name", "verify-once"))
    with ThreadPoolExecutor(6) as pool:
        futures = {key: pool.submit(_run, commands[key], cwd) for key in slow_first}
    return cwd, {key: f.result() for key, f in futures.items()}


def _error_line(res):
    """The one line starting ``contraction:`` on stderr (progress notes aside)."""
    lines = [line for line in res.err.splitlines() if line.startswith("contraction:")]
    assert len(lines) == 1, res.err
    return lines[0]


@pytest.mark.parametrize("key", list(USAGE_ERRORS))
def test_a_mistake_is_one_line_naming_the_flag(runs, key):
    flag, status, args = USAGE_ERRORS[key]
    res = runs[1][key]
    assert res.rc == status, (args, res.rc, res.err)
    assert "Traceback" not in res.err + res.out
    line = _error_line(res)
    assert line.startswith(f"contraction: error: {flag}"), line
    assert not re.search(r"np\.\w+\(", line), line
    if status == 2:  # refused before any work: nothing else on stderr, nothing on stdout
        assert res.err.strip() == line and res.out == "", res.err + res.out


def test_each_quoted_mistake_says_the_right_thing(runs):
    cwd, res = runs
    assert "/proc/x" in _error_line(res["json-unwritable"])
    assert "which is a file" in _error_line(res["figures-is-a-file"])
    assert "which is a folder" in _error_line(res["json-is-a-folder"])
    assert os.listdir(cwd / "adir") == [] and not [p for p in os.listdir(cwd) if p.endswith(".tmp")]
    assert "got -3" in _error_line(res["negative-steps"])
    assert "got 0" in _error_line(res["zero-batch-size"])
    assert "C13" in _error_line(res["unknown-claim"]) and "running" not in res["unknown-claim"].err
    assert "trajectories," in _error_line(res["unknown-figure"])  # the names, without .png
    assert "--lr" in _error_line(res["compare-overflows"])
    line = _error_line(res["experiment-diverges"])
    assert "diverged" in line and "--lr" in line
    assert not re.search(r"\d{20}", res["experiment-diverges"].out)  # no 58-digit loss of a diverged run


def test_diverging_compare_prints_then_says_the_iterates_grow(runs):
    res = runs[1]["compare-grows"]
    assert res.rc == 1 and len(res.out.splitlines()) == 8  # two header lines and steps 0..5
    line = _error_line(res)
    assert line.startswith("contraction: error: --lr") and "grow" in line and "below 2" in line


def test_reproduce_takes_names_without_png_and_writes_each_once(runs):
    cwd, res = runs
    assert res["reproduce-by-name"].rc == 0, res["reproduce-by-name"].err
    assert os.listdir(cwd / "figs") == ["trajectories.png"]
    assert res["reproduce-by-name"].out.count("wrote") == 1


def test_a_claim_named_twice_runs_once(runs):
    res = runs[1]["verify-once"]
    assert res.rc == 0, res.err
    assert "1 passed, 0 failed" in res.out
    assert len([line for line in res.out.splitlines() if line.startswith("C1 ")]) == 1


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"contraction {__version__}\n"


# --- Ctrl-C ---------------------------------------------------------------------------------------
def _interrupt_once_running(args, cwd, started):
    """Start the command, wait for the stderr line starting ``started``, let it work 1 s, press Ctrl-C."""
    proc = _start(args, cwd)
    try:
        seen = []
        deadline = time.monotonic() + 120
        while not (seen and seen[-1].startswith(started)):
            ready, _, _ = select.select([proc.stderr], [], [], max(0.0, deadline - time.monotonic()))
            assert ready and proc.poll() is None, f"never started: {''.join(seen)}"
            seen.append(proc.stderr.readline())
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return SimpleNamespace(rc=proc.returncode, out=out, err="".join(seen) + err)


def test_ctrl_c_during_verify_exits_130_in_one_line(tmp_path):
    res = _interrupt_once_running(["verify", "--only", "C13"], tmp_path, "running theorem checks")
    assert res.rc == 130, res.err
    assert res.err.splitlines()[-1] == "contraction: interrupted"
    assert "Traceback" not in res.err and res.out == ""


def test_ctrl_c_during_an_experiment_says_a_rerun_resumes(tmp_path):
    args = ["experiment", "nn", "--data", "synthetic", "--warmup", "0", "--steps", "300", "--out", "run"]
    res = _interrupt_once_running(args, tmp_path, "running experiment nn")
    assert res.rc == 130, res.err
    assert res.err.splitlines()[-1] == "contraction: interrupted; rerun the same command to resume"
    assert "Traceback" not in res.err
    assert not [p for _, _, files in os.walk(tmp_path) for p in files if p.endswith(".tmp")]


def test_an_interrupted_verify_takes_back_the_folders_it_created(tmp_path, monkeypatch, capsys):
    def interrupted(claim, quick=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(proofs_checks, "run_check", interrupted)
    args = ["verify", "--only", "C2", "--figures", str(tmp_path / "a" / "b"), "--json", str(tmp_path / "c" / "v.json")]
    assert main([*args, "--quiet"]) == 130
    assert capsys.readouterr().err == "contraction: interrupted\n"
    assert os.listdir(tmp_path) == []


# --- help -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("command,expected", [
    (["compare"], ["--lr", "(default: 0.5)", "--steps", "(default: 20)", "--seed", "(default: 0)"]),
    (["reproduce"], ["(default: figures)", *[name.removesuffix(".png") for name in FIGURES]]),
    (["verify"], ["--quick", "--json", "--figures", "--verbose", "--quiet", list(proofs_checks.CLAIMS)[-1]]),
    (["experiment", "nn"], ["(default: mlp)", "(default: digits)", "(default: 120)", "(default: 16)",
                            "(default: 0.3)", "(default: 3)", "(default: 0.0)", "(default: 2000)", "(default: 64)",
                            "(default: nn-results)", "resumes"]),
])
def test_help_gives_each_flag_a_sentence_and_its_default(command, expected, capsys):
    assert main([*command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for piece in expected:
        assert piece in text, piece


def test_every_flag_has_a_sentence_and_shows_its_default(monkeypatch):
    added = []
    original = argparse.ArgumentParser.add_argument

    def add_argument(self, *names, **kwargs):
        added.append((names, kwargs))
        return original(self, *names, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "add_argument", add_argument)
    build_parser()
    options = [(names, kw) for names, kw in added if names[0].startswith("-")]
    assert len(options) > 20
    for names, kw in options:
        assert len(kw.get("help", "").split()) >= 3, names
        if kw.get("default") not in (None, False, argparse.SUPPRESS) and kw.get("action") != "version":
            assert "%(default)s" in kw["help"], names


# --- the verify table and its JSON ----------------------------------------------------------------
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _validate(doc, schema, where="$"):
    """The subset of JSON Schema that docs/verify.schema.json uses: type, enum, required, properties, items."""
    allowed = {"$schema", "title", "description", "type", "enum", "required", "properties", "items"}
    assert set(schema) <= allowed, f"the schema uses {set(schema) - allowed}: teach this validator first"
    errors = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(doc, _TYPES[t]) and not (t != "boolean" and isinstance(doc, bool)) if t in _TYPES
                 else (t == "integer" and isinstance(doc, int) and not isinstance(doc, bool))
                 or (t == "number" and isinstance(doc, (int, float)) and not isinstance(doc, bool))
                 for t in types)
        if not ok:
            return [f"{where}: expected {types}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{where}: {doc!r} not in {schema['enum']}")
    if isinstance(doc, dict):
        errors += [f"{where}: missing {key}" for key in schema.get("required", []) if key not in doc]
        for key, sub in schema.get("properties", {}).items():
            if key in doc:
                errors += _validate(doc[key], sub, f"{where}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            errors += _validate(item, schema["items"], f"{where}[{i}]")
    return errors


def test_verify_json_follows_the_schema(tmp_path, capsys):
    path = tmp_path / "new" / "v.json"
    assert main(["verify", "--quick", "--only", "C2", "C6", "C2", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert _validate(doc, SCHEMA) == []
    assert doc["counts"] == {"passed": 2, "failed": 0} and doc["package_version"] == __version__
    assert doc["configuration"] == {"quick": True, "only": ["C2", "C6"], "claims": ["C2", "C6"]}
    assert [r["kind"] for r in doc["results"]] == [proofs_checks.load("C2").KIND, proofs_checks.load("C6").KIND]
    assert f"wrote {path}" in capsys.readouterr().err
    # the validator does refuse what the schema excludes
    broken = json.loads(json.dumps(doc))
    del broken["counts"]
    broken["results"][0]["kind"] = "zscore"
    broken["results"][1]["numerical"] = "0.9"
    assert len(_validate(broken, SCHEMA)) == 3


def _results_of_every_claim(passed=True):
    results = []
    for claim in proofs_checks.CLAIMS:
        module = proofs_checks.load(claim)
        results.append(proofs_checks.CheckResult(claim, module.STATEMENT, 2.159, 0.0, "==", 4.0, passed, 123.4,
                                                 {}, module.KIND, module.MEASURES))
    return results


def test_the_table_fits_100_columns_and_prints_statements_only_when_verbose():
    results = _results_of_every_claim()
    short = proofs_checks.format_table(results)
    full = proofs_checks.format_table(results, verbose=True)
    assert max(map(len, short.splitlines())) <= 100 and max(map(len, full.splitlines())) <= 100
    assert "..." not in short + full
    flat = " ".join(full.split())
    for r in results:
        assert " ".join(r.statement.split()) in flat and " ".join(r.measures.split()) in flat
        assert r.statement[:25] not in short
    assert "z-score" in short and f"{len(results)} passed, 0 failed" in short


@pytest.mark.parametrize("kind,numerical,theoretical,relation,tolerance,passed,text", [
    ("z-score", 2.159, 0.0, "==", 4.0, True, "|z| = 2.159 <= 4"),
    ("z-score", -5.5, 0.0, "==", 4.0, False, "|z| = 5.5 > 4"),
    ("p-value", 0.41, 1e-3, "p>=", 0.0, True, "p = 0.41 >= 0.001"),
    ("p-value", 1e-5, 1e-3, "p>=", 0.0, False, "p = 1e-05 < 0.001"),
    ("slope", 3.05, 3.0, "==", 0.2, True, "3.05 = 3 ± 0.2"),
    ("slope", 2.5, 3.0, "==", 0.2, False, "2.5 ≠ 3 ± 0.2"),
    ("ratio", 0.9313, 1.0, "<=", 1e-9, True, "0.9313 <= 1"),
    ("ratio", 1.5, 1.0, "<=", 1e-9, False, "1.5 > 1"),
])
def test_a_value_reads_true_exactly_when_its_relation_holds(kind, numerical, theoretical, relation, tolerance,
                                                             passed, text):
    r = proofs_checks.make_result("C1", "s", numerical, theoretical, relation, tolerance, 0.0)
    assert r.passed is passed
    assert proofs_checks.describe_value(dataclasses.replace(r, kind=kind)) == text


def test_run_check_says_what_its_value_is():
    r = proofs_checks.run_check("C2", quick=True)
    module = proofs_checks.load("C2")
    assert (r.kind, r.measures) == (module.KIND, module.MEASURES) and r.kind in proofs_checks.KINDS
    assert r.as_dict()["kind"] == module.KIND


def test_messages_speak_of_flags_and_plain_numbers():
    flags = {"batch_size": "--batch-size", "lr": "--lr"}
    assert flag_message("probs: expected probabilities summing to 1, got sum np.float64(0.6)", flags) == \
        "probs: expected probabilities summing to 1, got sum 0.6"
    assert flag_message("batch_size: expected an integer >= 1, got 0", flags).startswith("--batch-size: ")
    assert flag_message("n_steps: expected an integer", flags).startswith("--steps: ")
    assert flag_message("diverged; lower lr (now 50): 1 - lr*h", flags) == "diverged; lower --lr (now 50): 1 - lr*h"


# --- experiment nn: what its outcome prints and the exit status -----------------------------------
def _method(evals):
    return SimpleNamespace(gradient_evals=evals, hvp_evals=0, loss_total_variation=1.25,
                           step_norm=np.array([0.5, 0.25]), final_test_accuracy=0.75)


def _fake_run(monkeypatch, **outcome):
    def run_nn_experiment(progress=None, out_dir=None, **settings):
        for done, label in enumerate(("warm-up", "forward", "done"), 1):
            progress(label, done, 3)
        fields = {"methods": {"forward": _method(10)}, "diverged": False, "divergence": None, "reused": (),
                  "claim_holds": True, "claims_not_holding": (), **outcome}
        return SimpleNamespace(summary=SimpleNamespace(statement="backward settles."), **fields)

    monkeypatch.setattr(_cli_commands, "run_nn_experiment", run_nn_experiment)
    monkeypatch.setattr(_cli_commands, "write_experiment_figures", lambda result, out: [f"{out}/curves.png"])


def test_a_diverged_experiment_shows_what_ran_and_exits_1(tmp_path, monkeypatch, capsys):
    _fake_run(monkeypatch, diverged=True, claim_holds=False, claims_not_holding=("not tested (the run diverged)",),
              divergence="forward SGD diverged at step 37 of 120 (loss overflow); lower lr (now 50)")
    assert main(["experiment", "nn", "--out", str(tmp_path / "nn")]) == 1
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[:2]] == ["method", "forward"]
    assert "does not hold: not tested" in out
    assert err.splitlines()[-1] == ("contraction: error: forward SGD diverged at step 37 of 120 (loss overflow); "
                                    "lower --lr (now 50)")
    assert "curves.png" not in err  # no figures of a diverged run


def test_an_experiment_whose_claim_does_not_hold_exits_1(tmp_path, monkeypatch, capsys):
    _fake_run(monkeypatch, claim_holds=False, claims_not_holding=("backward step norms did not settle",))
    assert main(["experiment", "nn", "--out", str(tmp_path / "nn"), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "does not hold: backward step norms did not settle" in out and err == ""


def test_a_resumed_experiment_says_what_it_reused(tmp_path, monkeypatch, capsys):
    _fake_run(monkeypatch, reused=("forward", "backward"))
    assert main(["experiment", "nn", "--out", str(tmp_path / "nn")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("resumed: reused forward, backward")
    assert "does not hold" not in out and "wrote" in err and "curves.png" in err


def test_a_folder_held_by_another_run_is_a_usage_error(tmp_path, capsys):
    folder = tmp_path / "nn"
    held, done = threading.Event(), threading.Event()

    def other_run():
        with hold_folder(folder):
            held.set()
            done.wait(30)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(30)
        assert main(["experiment", "nn", "--out", str(folder)]) == 2
    finally:
        done.set()
        thread.join()
    err = capsys.readouterr().err
    assert err.startswith("contraction: error: --out: ") and "another run" in err and len(err.splitlines()) == 1
