"""torchrun support: per-rank batch slices, device choice, and DDP == single-process training."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from liquid.training.args import parse_args
from liquid.training.distributed import RankSliceBatchSampler, init_distributed, resolve_device
from liquid.training.trainer import train

REPO = Path(__file__).resolve().parents[1]
DDP_TIMEOUT_S = 240


class ListSampler:
    """A stand-in global sampler: fixed batches, records set_epoch / set_start_batch."""

    def __init__(self, batches):
        self.batches, self.epoch, self.start = batches, None, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def set_start_batch(self, k):
        self.start = k

    def __len__(self):
        return len(self.batches) - self.start

    def __iter__(self):
        return iter(self.batches[self.start:])


def test_rank_slices_partition_each_global_batch_in_order():
    batches = [list(range(10 * b, 10 * b + 6)) for b in range(4)]
    for world in (1, 2, 3):
        per_rank = [list(RankSliceBatchSampler(ListSampler(batches), rank, world)) for rank in range(world)]
        for index, batch in enumerate(batches):
            joined = [i for rank in range(world) for i in per_rank[rank][index]]
            assert joined == batch  # contiguous slices, rank order, nothing lost or repeated
            assert {len(per_rank[rank][index]) for rank in range(world)} == {6 // world}
    sampler = RankSliceBatchSampler(ListSampler(batches), 1, 2)
    sampler.set_epoch(3)
    sampler.set_start_batch(2)
    assert sampler.global_sampler.epoch == 3 and list(sampler) == [[23, 24, 25], [33, 34, 35]]
    with pytest.raises(ValueError, match="rank"):
        RankSliceBatchSampler(ListSampler(batches), 2, 2)


def test_single_process_context_and_device(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed("cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.is_distributed) == (0, 1, True, False)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == torch.device(expected)


def write_equal_length_rows(path: Path, count: int) -> Path:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(count):
            a, b = rng.randint(1, 4), rng.randint(1, 5)
            row = {"instruction": f"Suma {a} y {b}.", "response": f"La suma es {a} + {b} = {a + b}.",
                   "task": "math", "answer": str(a + b)}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def test_ddp_two_processes_equal_single_process_on_the_global_batch(tmp_path):
    """2 gloo ranks x batch 2 == 1 process x batch 4 after 3 steps (rows of equal length, no batch-level losses)."""
    data = write_equal_length_rows(tmp_path / "train.jsonl", 8)
    common = ["--preset", "tiny", "--train_file", str(data), "--vocab_size", "200", "--max_steps", "3",
              "--num_epochs", "10", "--learning_rate", "0.01", "--warmup_steps", "0", "--eval_every", "0",
              "--save_every", "3", "--log_every", "1", "--device", "cpu", "--precision", "fp32",
              "--set", "moe_loss_weight=0", "--set", "reconstruction_weight=0",
              "--number_space", "separate"]  # "▁" + digit: every row the same length, whatever BPE merged
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    ddp_dir = tmp_path / "ddp"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "main.py",
         *common, "--batch_size", "2", "--output_dir", str(ddp_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=DDP_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(parse_args([*common, "--batch_size", "4", "--output_dir", str(tmp_path / "single")]))
    finally:
        torch.set_num_threads(threads)

    ddp = load_file(ddp_dir / "checkpoint-3" / "model.safetensors")
    single = load_file(tmp_path / "single" / "checkpoint-3" / "model.safetensors")
    assert ddp.keys() == single.keys()
    for name, tensor in single.items():
        torch.testing.assert_close(ddp[name], tensor, atol=1e-5, rtol=1e-5, msg=name)
    logged = [json.loads(line) for line in (ddp_dir / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["type"] == "train"] == [1, 2, 3]  # rank 0 alone writes the log
