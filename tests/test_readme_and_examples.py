"""The README's code blocks and the example scripts run as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)


def test_readme_quick_start_has_two_commands_and_ci_runs_the_test_command():
    text = (ROOT / "README.md").read_text()
    quick = re.search(r"## Quick start.*?```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert len(quick) == 2 and "pytest" in quick[1]
    assert quick[1] in (ROOT / ".ci" / "run").read_text()


def test_quickstart_example_runs_and_writes_results(tmp_path):
    out = tmp_path / "res.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "self_training_quickstart.py"), "--learners", "4", "--steps", "5",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "softmax" in proc.stdout and "test acc. end" in proc.stdout
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"random", "greedy", "epsilon-greedy", "softmax(tau=0.05)"}
    assert len(results["greedy"]["test_accuracy_end"]) == 4


def test_theory_reproduction_example_writes_plots_and_summary(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "theory_reproduction.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("d_t.png", "phase_diagram.png", "accuracy_gap.png", "share.png", "bandit.png", "summary.md",
                 "sweep.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = (tmp_path / "summary.md").read_text()
    for heading in ("## Self-training", "## Certificate", "## Contraction estimate", "## Phase diagram",
                    "## Accuracy of the end state", "## Bandits", "## Active learning", "## Sampled"):
        assert heading in summary
    assert "nan" not in summary.lower()
    records = json.loads((tmp_path / "sweep.json").read_text())
    agree = float(summary.split("agrees with the observed verdict in **")[1].split("%")[0]) / 100
    assert agree >= 0.95 and len(records) == 64


def test_learned_selectors_example_trains_compares_and_saves(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "learned_selectors.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results["selftrain"]) == {"breast_cancer", "moons"}
    assert {"random", "greedy confidence", "PPO (criterion choice)", "MaskablePPO (pool indices)"} <= set(
        results["selftrain"]["moons"])
    assert {"UCB1", "Thompson (Beta)", "PPO"} <= set(results["bandit"])
    for name in ("ppo_criterion_choice.zip", "maskable_ppo_indices.zip", "ppo_bandit.zip", "selftrain_curve.png",
                 "bandit_curve.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name


def _run_quick_example(script, tmp_path, outputs):
    """Run ``examples/<script> --quick --out tmp_path``; it succeeds and writes every file of ``outputs``."""
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for name in outputs:
        assert (tmp_path / name).stat().st_size > 0, name


def test_useful_convergent_map_example_writes_the_map_and_pins_the_structure(tmp_path):
    _run_quick_example("useful_convergent_map.py", tmp_path,
                       ("map_moons.png", "map_breast_cancer.png", "summary.md", "results.json"))
    cells = json.loads((tmp_path / "results.json").read_text())["cells"]
    assert set(cells) == {"moons", "breast_cancer"}
    for dataset_cells in cells.values():
        plain = [c for c in dataset_cells if c["T"] == 1.0]
        # plain soft labels: the same end point whatever the selection temperature, so the same gain
        assert max(c["gain"] for c in plain) - min(c["gain"] for c in plain) < 1e-9
        assert all(np.isfinite([c["settled"], c["rate"], c["gain"]]).all() for c in dataset_cells)
    assert "nan" not in (tmp_path / "summary.md").read_text().lower()


def test_paper_banknote_example_runs_the_papers_setup(tmp_path):
    _run_quick_example("paper_banknote.py", tmp_path,
                       ("theta_paths.png", "total_variation.png", "summary.md", "results.json"))
    payload = json.loads((tmp_path / "results.json").read_text())
    by_criterion = payload["results"]["0.8"]
    assert set(by_criterion) == {"PPP", "likelihood", "predictive variance", "probability score",
                                 "PPP, label-marginal (custom)"}
    for res in by_criterion.values():
        paths = np.asarray(res["theta_norm"])
        assert paths.shape == (4, 81) and np.isfinite(paths).all()  # 80 unlabeled notes: 80 steps, plus the start
        assert np.allclose(res["total_variation"], np.abs(np.diff(paths, axis=1)).sum(1))
        assert all(0.5 <= a <= 1.0 for a in res["test_accuracy"])
    # the criteria make different choices: not every criterion ends on the same parameter path
    assert len({round(float(np.asarray(r["theta_norm"]).sum()), 3) for r in by_criterion.values()}) > 1
    assert "nan" not in (tmp_path / "summary.md").read_text().lower()
