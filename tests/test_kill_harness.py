"""Fast kill harness: kill -9 a tiny run at a random moment and inside a checkpoint write, resume with
--resume auto, and get the uninterrupted run's weights bit for bit (CPU fp32). The long version is
`scripts/kill_harness.py --trials 20`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 300


def test_killed_and_resumed_runs_end_with_identical_weights(tmp_path):
    summary_path = tmp_path / "summary.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    # A fresh interpreter: the harness forks its runs, which is only safe before any torch thread pool exists.
    done = subprocess.run([sys.executable, "scripts/kill_harness.py", "--trials", "1", "--max_steps", "4",
                           "--save_every", "2", "--kills", "2", "--work_dir", str(tmp_path / "work"),
                           "--json", str(summary_path)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert summary_path.is_file(), done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    [trial] = summary["per_trial"]
    modes = [kill["mode"] for kill in trial["kills"]]
    assert "write" in modes, trial  # one kill landed inside a checkpoint write (a .tmp-* folder existed)
    assert trial["identical"], (trial, done.stdout[-2000:])
    assert summary["worst_lost_steps"] <= 2
    assert done.returncode == 0, done.stdout[-2000:]
    # the killed write left no half checkpoint under a final name, and no staging folder survived the resume
    work = tmp_path / "work" / "trial-0"
    assert not list(work.glob(".tmp-*"))
    assert sorted(p.name for p in work.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
