"""`python -m liquid.ablate` end to end: two variants (the liquid model and a vanilla T5), a 0.05-minute budget,
tiny data files, a small test subset. Checks the files it writes and that the T5 is sized like the liquid model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from liquid import ablate
from test_training import write_rows  # tests/ is on sys.path under pytest

FLAGS = ["--vocab_size", "200", "--max_source_length", "24", "--max_target_length", "24", "--eval_every", "2",
         "--eval_samples", "4", "--log_every", "1", "--batch_size", "8", "--device", "cpu", "--precision", "fp32",
         "--monitor_every", "1000", "--warmup_steps", "1"]



def test_ablation_end_to_end(tmp_path: Path, capsys):
    data = [str(write_rows(tmp_path / f"{name}.jsonl", count, seed)) for name, count, seed in
            (("train", 64, 0), ("validation", 8, 1), ("test", 12, 2))]
    long = str(write_rows(tmp_path / "long.jsonl", 3, 4))
    out = tmp_path / "ablation"
    code = ablate.main(["--budget_minutes", "0.05", "--preset", "tiny", "--variants", "full,t5", "--seeds", "3",
                        "--output_dir", str(out), "--max_test_rows", "6", "--train_file", data[0],
                        "--validation_file", data[1], "--test_file", data[2], "--long_test_file", long, *FLAGS])
    assert code == 0
    results = json.loads((out / ablate.RESULTS_FILE).read_text())
    assert [(r["variant"], r["seed"]) for r in results] == [("full", 3), ("t5", 3)]
    assert not any("_rows" in r for r in results)  # the test rows are not copied into every record
    for r in results:
        assert r["stop_reason"] == "time_limit" and r["steps"] > 0
        assert r["test"]["overall"]["count"] == 6  # the test subset, scored by liquid.evaluation
        assert r["long"]["overall"]["count"] == 3 and r["budget_minutes"] == 0.05
        assert r["curve"] and all(0 < seconds for seconds, _ in r["curve"])
        assert (Path(r["run_dir"]) / "log.jsonl").is_file()
    full, t5 = results
    assert full["params_active"] < full["params_total"]  # MoE: top-k of the experts
    assert t5["params_active"] == t5["params_total"]
    assert abs(t5["params_total"] - full["params_total"]) < 0.05 * full["params_total"]
    table = (out / ablate.TABLE_FILE).read_text()
    assert "| full | 1 |" in table and "| t5 | 1 |" in table and "math acc" in table and "sentiment cov" in table
    assert "long acc" in table
    assert (out / ablate.PLOT_FILE).stat().st_size > 0
    assert "ablation.md" in capsys.readouterr().out

    # --tabulate: one table from earlier ablation directories, without training
    merged = tmp_path / "merged"
    assert ablate.main(["--tabulate", str(out), str(out), "--output_dir", str(merged)]) == 0
    merged_table = (merged / ablate.TABLE_FILE).read_text()
    assert "| full | 2 |" in merged_table and "| t5 | 2 |" in merged_table  # each run listed twice: two "seeds"
    assert len(json.loads((merged / ablate.RESULTS_FILE).read_text())) == 4
    assert ablate.main(["--tabulate", str(out), "--output_dir", str(out)]) == 2  # would overwrite its input
    assert ablate.main(["--tabulate", str(tmp_path / "nowhere"), "--output_dir", str(merged)]) == 2


def test_variant_flags_and_bad_input(tmp_path: Path):
    args, passthrough = ablate.parse_args(["--budget_minutes", "1", "--variants", "full_attention,dense_ffn",
                                           "--max_source_length", "40"])
    argv = ablate.training_argv(args, passthrough, "full_attention", 0, tmp_path, full_window=128)
    assert argv[argv.index("--max_time_minutes") + 1] == "1.0"
    assert "window_size=256" in argv and "decoder_window_size=128" in argv and argv[-2:] == ["--max_source_length",
                                                                                             "40"]
    argv = ablate.training_argv(args, passthrough, "dense_ffn", 0, tmp_path, full_window=128)
    assert "ffn_type=dense" in argv
    assert ablate.main(["--budget_minutes", "1", "--variants", "full,bogus"]) == 2
    assert ablate.main(["--budget_minutes", "1", "--seed", "4"]) == 2
    assert ablate.main(["--variants", "full"]) == 2  # no budget and nothing to tabulate
    assert ablate.main(["--budget_minutes", "1", "--long_test_file", str(tmp_path / "missing.jsonl")]) == 2
    args, _ = ablate.parse_args(["--budget_minutes", "1", "--long_test_file", "none"])
    assert args.long_test_file is None


def test_t5_with_more_decoder_than_encoder_layers_generates_like_without_cache():
    """The ablation's T5 (2 encoder, 3 decoder layers in `small`) must generate; cached == uncached tokens."""
    import torch
    from transformers import T5Config

    from liquid.ablate import _t5_class

    config = T5Config(vocab_size=60, d_model=32, d_kv=8, d_ff=48, num_layers=1, num_decoder_layers=3, num_heads=4,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    torch.manual_seed(0)
    model = _t5_class()(config).eval()
    inputs = torch.randint(2, 60, (2, 7))
    cached = model.generate(inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    plain = model.generate(inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6, use_cache=False)
    assert cached.shape == (2, 7) and torch.equal(cached, plain)


def test_seed_variants_limit_which_variants_repeat_over_seeds():
    from liquid import ablate

    args, _ = ablate.parse_args(["--budget_minutes", "1", "--variants", "full,ce_loss,t5", "--seeds", "0,1"])
    assert args.seed_variants == ["full", "t5"]
    args, _ = ablate.parse_args(["--budget_minutes", "1", "--seed_variants", "all"])
    assert args.seed_variants == list(ablate.VARIANTS)
    with pytest.raises(ablate.AblationError):
        ablate.parse_args(["--budget_minutes", "1", "--seed_variants", "full,nope"])


def test_mean_spread_formats_scores_and_counts():
    assert ablate.mean_spread([0.7, 0.8]) == "0.750 ± 0.071"  # sample std of two seeds
    assert ablate.mean_spread([4000, 4200]) == "4,100 ± 141"
    assert ablate.mean_spread([0.5, None]) == "0.500" and ablate.mean_spread([None]) == "-"
