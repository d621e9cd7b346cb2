"""Kill harness: `kill -9` a tiny CPU fp32 training run at random moments, resume it with `--resume auto`,
and check that its final weights are bit-identical to an uninterrupted run.

    taskset -c 1 env OMP_NUM_THREADS=1 python scripts/kill_harness.py --trials 20
    taskset -c 1 env OMP_NUM_THREADS=1 python scripts/kill_harness.py --trials 3 --max_steps 6 --save_every 2

Each trial runs `main.py` in a child process (forked from this one, so torch and the data stack are
imported once) and kills it with SIGKILL up to `--kills` times, each kill either at a random moment
of the run ("random") or while a checkpoint is being written ("write": as soon as a ``.tmp-*``
staging folder appears, with the write slowed by LIQUID_CHECKPOINT_WRITE_DELAY so the kill lands
inside it). After the last kill the run is resumed to the end. Printed: trials, how many ended with
weights identical to the reference, and the worst work lost by a kill (steps logged before the kill
minus the step of the checkpoint the next launch resumed from; the goal is <= --save_every).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("MKL_CBWR", "AUTO")  # as main.py does, before MKL loads (see there)

import torch  # noqa: E402  (imported before forking: every child starts warm)
from safetensors.torch import load_file  # noqa: E402

import main as cli  # noqa: E402
import liquid.training.trainer  # noqa: E402,F401
from liquid.training import checkpoint as ckpt  # noqa: E402

TINY_FLAGS = ["--preset", "tiny", "--vocab_size", "200", "--max_source_length", "24", "--max_target_length", "24",
              "--batch_size", "2", "--learning_rate", "0.01", "--warmup_steps", "1", "--log_every", "1",
              "--eval_every", "0", "--monitor_every", "1000", "--num_epochs", "100", "--device", "cpu",
              "--precision", "fp32", "--seed", "3"]
POLL_SECONDS = 0.002
WRITE_DELAY_SECONDS = 0.05  # per file group of a checkpoint write: a write then takes >= 4 x this
MODES = ("random", "write")


@dataclass
class Trial:
    identical: bool = False
    launches: int = 0
    kills: list[dict] = field(default_factory=list)  # {"mode", "steps_done", "resumed_from", "lost"}


def write_data(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for index in range(rows):
            a, b = index % 4 + 1, index % 5 + 1
            row = {"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.",
                   "task": "math", "answer": str(a + b)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def launch(argv: list[str], log_path: Path, write_delay: float) -> int:
    """Fork a child that runs main.main(argv) with its output in `log_path`; returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 3
    try:  # the child: never returns into the parent's code
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        if write_delay > 0:
            os.environ[ckpt.WRITE_DELAY_ENV] = str(write_delay)
        code = cli.main(argv)
    except BaseException:  # noqa: BLE001 - report anything in the child's log, then exit
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def logged_steps(output_dir: Path) -> int:
    """The last optimizer step written to log.jsonl (0 if none); a torn last line is ignored."""
    path = output_dir / "log.jsonl"
    last = 0
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("type") == "train":
                last = record["step"]
    return last


def kill_at(pid: int, output_dir: Path, mode: str, rng: random.Random, expected_seconds: float) -> bool:
    """SIGKILL the child at a random moment ("random") or inside a checkpoint write ("write").
    Returns False if the child finished first."""
    stale = set(output_dir.glob(f"{ckpt.TMP_PREFIX}*"))  # left by an earlier kill: not this launch's write
    start = time.monotonic()
    deadline = start + rng.uniform(0.0, expected_seconds) if mode == "random" else start + 10 * expected_seconds
    while time.monotonic() < deadline:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
        if mode == "write" and set(output_dir.glob(f"{ckpt.TMP_PREFIX}*")) - stale:
            time.sleep(rng.uniform(0.0, 4 * WRITE_DELAY_SECONDS))
            break
        time.sleep(POLL_SECONDS)
    os.kill(pid, signal.SIGKILL)
    wait(pid)
    return True


def final_weights(output_dir: Path, max_steps: int) -> dict[str, torch.Tensor]:
    return load_file(output_dir / f"{ckpt.CHECKPOINT_PREFIX}{max_steps}" / "model.safetensors")


def run_trial(index: int, work: Path, flags: list[str], reference: dict, expected_seconds: float, kills: int,
              rng: random.Random, max_steps: int, modes=MODES) -> Trial:
    trial = Trial()
    out = work / f"trial-{index}"
    argv = [*flags, "--output_dir", str(out), "--resume", "auto"]
    for kill in range(kills + 1):
        last = kill == kills
        mode = modes[(index + kill) % len(modes)]  # alternate: every trial gets both kinds when kills >= 2
        resumed_from = ckpt.find_latest_checkpoint(out)
        pid = launch(argv, work / f"trial-{index}.log", 0.0 if last else WRITE_DELAY_SECONDS)
        trial.launches += 1
        if last:
            code = wait(pid)
            if code != 0:
                raise RuntimeError(f"trial {index}: final launch exited {code}; see {work}/trial-{index}.log")
            break
        if kill_at(pid, out, mode, rng, expected_seconds):
            done = logged_steps(out)
            start = ckpt.checkpoint_step(resumed_from) if resumed_from else 0
            after = ckpt.find_latest_checkpoint(out)
            trial.kills.append({"mode": mode, "steps_done": done, "resumed_from": start,
                                "next_resume": ckpt.checkpoint_step(after) if after else 0})
    for record in trial.kills:
        record["lost"] = max(0, record["steps_done"] - record["next_resume"])
    weights = final_weights(out, max_steps)
    trial.identical = weights.keys() == reference.keys() and all(torch.equal(weights[k], reference[k]) for k in reference)
    return trial


def run_harness(trials: int, max_steps: int, save_every: int, kills: int, seed: int, work: Path,
                modes=MODES, rows: int = 12) -> dict:
    data = write_data(work / "train.jsonl", rows)
    flags = [*TINY_FLAGS, "--train_file", str(data), "--max_steps", str(max_steps), "--save_every", str(save_every),
             "--keep_last", "2"]
    tick = time.monotonic()
    code = wait(launch([*flags, "--output_dir", str(work / "reference")], work / "reference.log", WRITE_DELAY_SECONDS))
    expected_seconds = time.monotonic() - tick
    if code != 0:
        raise RuntimeError(f"reference run exited {code}; see {work}/reference.log")
    reference = final_weights(work / "reference", max_steps)
    rng = random.Random(seed)
    results = [run_trial(i, work, flags, reference, expected_seconds, kills, rng, max_steps, modes)
               for i in range(trials)]
    all_kills = [k for t in results for k in t.kills]
    return {
        "trials": trials, "identical": sum(t.identical for t in results), "kills": len(all_kills),
        "kills_in_write": sum(k["mode"] == "write" for k in all_kills),
        "worst_lost_steps": max((k["lost"] for k in all_kills), default=0), "save_every": save_every,
        "max_steps": max_steps, "reference_seconds": round(expected_seconds, 1),
        "per_trial": [{"identical": t.identical, "launches": t.launches, "kills": t.kills} for t in results],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max_steps", type=int, default=8)
    parser.add_argument("--save_every", type=int, default=2)
    parser.add_argument("--kills", type=int, default=2, help="kills per trial before the final, unkilled launch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work_dir", help="default: a new temporary directory (kept, for the logs)")
    parser.add_argument("--json", help="also write the summary here")
    args = parser.parse_args(argv)
    if min(args.trials, args.max_steps, args.save_every) < 1 or args.kills < 0:
        parser.error("--trials, --max_steps and --save_every must be >= 1, --kills >= 0")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="kill-harness-"))
    work.mkdir(parents=True, exist_ok=True)
    tick = time.monotonic()
    summary = run_harness(args.trials, args.max_steps, args.save_every, args.kills, args.seed, work)
    summary["wall_seconds"] = round(time.monotonic() - tick, 1)
    for index, trial in enumerate(summary["per_trial"]):
        kills = ", ".join(f"{k['mode']}@{k['steps_done']}->{k['next_resume']}" for k in trial["kills"]) or "none"
        print(f"trial {index:2d}: {'identical' if trial['identical'] else 'DIFFERENT'}  kills (mode@logged step -> "
              f"resumed step): {kills}")
    print(f"trials {summary['trials']}, identical {summary['identical']}, kills {summary['kills']} "
          f"({summary['kills_in_write']} inside checkpoint writes), worst work lost {summary['worst_lost_steps']} "
          f"steps (save_every {args.save_every}), {summary['wall_seconds']} s; logs in {work}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0 if summary["identical"] == summary["trials"] and summary["worst_lost_steps"] <= args.save_every else 1


if __name__ == "__main__":
    sys.exit(main())
