import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch

from iscl_cli.checkpoint import load_model, load_trusted_dict
from iscl_cli.demo import read_stack, stack_scores
from iscl_cli.errors import IsclError
from iscl_cli.inference import TileOptions, denoise_image
from iscl_cli.simulate import make_unpaired_set
from iscl_cli.train import Run, TrainConfig, make_train_config, train
from tests.tiny import TINY_NETWORK


def write_stack(path, seed, slices=3, shape=(40, 48), dtype=np.uint16):
    rng = np.random.default_rng(seed)
    base = rng.uniform(200, 3000, size=(slices, *shape))
    tifffile.imwrite(path, base.astype(dtype), photometric="minisblack")
    return str(path)


@pytest.fixture
def folders(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "ref").mkdir()
    write_stack(tmp_path / "raw" / "a.tif", 1)
    write_stack(tmp_path / "ref" / "b.tif", 2)
    return str(tmp_path / "raw"), str(tmp_path / "ref")


def tiny_config(folders, out, **overrides):
    noisy, clean = folders
    options = dict(steps=4, batch_size=2, patch_size=16, checkpoint_every=2, preview_every=2, device="cpu", out=str(out))
    options.update(overrides)
    return make_train_config([noisy], [clean], "quick", network=TINY_NETWORK, **options)


def test_a_tiny_run_writes_model_metrics_preview_and_checkpoint(folders, tmp_path):
    model_path = train(tiny_config(folders, tmp_path / "run"))
    run = tmp_path / "run"
    assert model_path == run / "model.pt"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert {"d_total", "g_total", "h_total", "lr", "seconds"} <= set(records[0])
    assert sorted(p.name for p in (run / "previews").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert load_trusted_dict(run / "checkpoint.pt", "checkpoint")["step"] == 4
    loaded = load_model(model_path)
    assert loaded.card["provenance"]["steps"] == 4
    assert loaded.mapping.shared and loaded.mapping.noisy_low > 100
    check = loaded.card["provenance"]["noise_check"]
    assert len(check["per_slice"]) == 3 and check["threshold"] > 0  # the 3 noisy slices, each scored
    assert -1 <= check["structure"] <= 1


def test_the_quick_preset_chooses_gamma_on_transplant_pairs_and_stores_it(folders, tmp_path):
    write_stack(f"{folders[1]}/c.tif", 3, slices=5)  # 8 clean slices against 3 noisy ones
    loaded = load_model(train(tiny_config(folders, tmp_path / "run")))
    choice = loaded.card["provenance"]["ensemble_weight"]
    assert choice["pairs"] == 3  # as many as the 3 noisy slices, each with another clean slice
    assert len(choice["psnr_by_gamma"]) == 21
    best = max(choice["psnr_by_gamma"], key=lambda gamma: (choice["psnr_by_gamma"][gamma], -float(gamma)))
    assert loaded.model.config.gamma == choice["gamma"] == float(best)


@pytest.mark.parametrize("overrides", [dict(network={**TINY_NETWORK, "gamma": 0.3}), dict(per_domain=True),
                                       dict(preset="paper")])
def test_gamma_stays_where_net_gamma_per_domain_or_the_paper_preset_set_it(folders, tmp_path, overrides):
    noisy, clean = folders
    options = dict(steps=2, batch_size=2, patch_size=16, device="cpu", out=str(tmp_path / "run"),
                   network=TINY_NETWORK, preset="quick") | overrides
    loaded = load_model(train(make_train_config([noisy], [clean], **options)))
    assert "ensemble_weight" not in loaded.card["provenance"]
    assert loaded.model.config.gamma == options["network"].get("gamma", 0.5)


@pytest.mark.parametrize("stabilize, stabilized", [("auto", True), ("on", True), (None, False)])
def test_shot_noise_data_train_variance_stabilised_only_when_asked(tmp_path, stabilize, stabilized):
    data = make_unpaired_set(tmp_path / "data", "fluorescence", "poisson_gaussian", 4, 1, (64, 64), seed=3)
    loaded = load_model(train(tiny_config((str(data["noisy"]), str(data["clean"])), tmp_path / "run",
                                          stabilize=stabilize)))
    assert (loaded.mapping.variance_slope is not None) == stabilized
    assert ("variance-stabilised" in loaded.mapping.source) == stabilized
    (noisy,) = read_stack(data["test_noisy"])
    denoised = denoise_image(noisy, loaded.model, loaded.mapping, TileOptions(symmetries=1))
    low, high = loaded.mapping.clean_low, loaded.mapping.clean_high
    assert np.isfinite(denoised).all() and low - 1e-3 * (high - low) <= denoised.min() <= denoised.max() <= high + 1


@pytest.mark.parametrize("noise, orientation", [("charging", "rows"), ("film", "any")])
def test_auto_noise_orientation_is_decided_on_the_noisy_data_and_stored(tmp_path, noise, orientation):
    data = make_unpaired_set(tmp_path / "data", "em", noise, 4, 1, (64, 64), seed=3)
    loaded = load_model(train(tiny_config((str(data["noisy"]), str(data["clean"])), tmp_path / "run")))
    assert loaded.model.config.noise_orientation == orientation
    assert json.loads((tmp_path / "run" / "config.json").read_text())["noise_orientation"] == orientation
    stored = load_trusted_dict(tmp_path / "run" / "checkpoint.pt", "checkpoint")["config"]
    assert stored["noise_orientation"] == orientation  # a resumed run keeps the decision
    assert (stored["lr"], stored["d_lr"], stored["structured_noise_rates"]) == (2e-4, 8e-4, None)  # and its rates


@pytest.mark.parametrize("phantom, noise, rates", [("em", "charging", (2e-4, 8e-4)),
                                                  ("fluorescence", "poisson_gaussian", (1e-4, 4e-4))])
def test_the_preset_takes_its_rates_for_structured_noise_only_where_the_noise_is_structured(
        tmp_path, phantom, noise, rates):
    data = make_unpaired_set(tmp_path / "data", phantom, noise, 4, 1, (64, 64), seed=3)
    run = Run(tiny_config((str(data["noisy"]), str(data["clean"])), tmp_path / "run"))
    assert (run.config.lr, run.config.d_lr) == rates and run.config.structured_noise_rates is None
    assert run.optimizers.g.defaults["lr"] == rates[0] and run.optimizers.d.optimizer.defaults["lr"] == rates[1]


@pytest.mark.parametrize("stabilize", ["off", "auto", "on"])
def test_the_noise_variance_is_fitted_once_for_the_rates_and_the_stabilisation(tmp_path, monkeypatch, stabilize):
    import iscl_cli.intensity
    import iscl_cli.train
    data = make_unpaired_set(tmp_path / "data", "fluorescence", "poisson_gaussian", 4, 1, (64, 64), seed=3)
    fit_once, calls = iscl_cli.intensity.noise_variance_of, []

    def counted(noisy, seed):
        calls.append(seed)
        return fit_once(noisy, seed)

    monkeypatch.setattr(iscl_cli.intensity, "noise_variance_of", counted)
    monkeypatch.setattr(iscl_cli.train, "noise_variance_of", counted)
    run = Run(tiny_config((str(data["noisy"]), str(data["clean"])), tmp_path / "run", stabilize=stabilize))
    assert len(calls) == 1
    assert (run.mapping.variance_slope is not None) == (stabilize != "off")  # auto: this noise is shot noise


def test_given_rates_set_aside_the_rates_for_structured_noise(tmp_path):
    data = make_unpaired_set(tmp_path / "data", "em", "charging", 4, 1, (64, 64), seed=3)
    run = Run(tiny_config((str(data["noisy"]), str(data["clean"])), tmp_path / "run", lr=3e-4))
    assert (run.config.lr, run.config.d_lr) == (3e-4, 4e-4)  # the preset's d_lr, not its structured-noise one


def test_the_optimisers_take_their_rates_and_beta2_from_the_config(folders, tmp_path):
    optimizers = Run(tiny_config(folders, tmp_path / "run", lr=1e-3, d_lr=5e-3, beta2=0.99)).optimizers
    assert optimizers.d.optimizer.defaults["lr"] == 5e-3
    assert optimizers.g.defaults["lr"] == optimizers.h.optimizer.defaults["lr"] == 1e-3
    assert {o.defaults["betas"] for o in (optimizers.d.optimizer, optimizers.g, optimizers.h.optimizer)} == {(0.9, 0.99)}


def test_resume_continues_bit_for_bit(folders, tmp_path):
    # Resumed at step 6, past the five steps that RAdam's schedule holds at learning rate 0.
    config = tiny_config(folders, tmp_path / "whole", steps=8, checkpoint_every=6)
    train(config)

    def stop_after_step_7(report):
        if report.step == 7:
            raise KeyboardInterrupt

    interrupted = tiny_config(folders, tmp_path / "split", steps=8, checkpoint_every=6)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted, progress=stop_after_step_7)
    assert not (tmp_path / "split" / "model.pt").exists()
    train(None, resume=tmp_path / "split")

    whole = load_trusted_dict(tmp_path / "whole" / "model.pt", "model")["nets"]
    split = load_trusted_dict(tmp_path / "split" / "model.pt", "model")["nets"]
    for net in whole:
        for key in whole[net]:
            assert torch.equal(whole[net][key], split[net][key]), (net, key)
    steps = [json.loads(line)["step"] for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 8]


@pytest.mark.parametrize("overrides, message", [
    (dict(steps=0), "--steps must be at least 1"),
    (dict(batch_size=0), "--batch-size must be at least 1"),
    (dict(patch_size=8, network=dict(disc_layers=3)), "smaller than the discriminators"),
    (dict(d_lr=0.0), "--d-lr must be positive"),
    (dict(beta2=1.0), "--beta2 must lie between 0 and 1"),
    (dict(structured_noise_rates=(2e-4, 0.0)), "the rates for structured noise must be positive"),
    (dict(stabilize="maybe"), "--stabilize must be one of"),
    (dict(noise_orientation="diagonal"), "--noise-orientation must be one of"),
    (dict(network=dict(noise_orientation="rows")), "with --noise-orientation, not --net"),
])
def test_bad_settings_are_refused(overrides, message):
    network = overrides.pop("network", None)
    with pytest.raises(IsclError, match=message):
        make_train_config(["raw"], ["ref"], "quick", network=network, **overrides)


def test_unknown_preset_and_network_setting():
    with pytest.raises(IsclError, match="unknown preset"):
        TrainConfig.from_preset("fast", noisy=[], clean=[])
    with pytest.raises(IsclError, match="unknown network setting"):
        make_train_config(["raw"], ["ref"], network={"depth": 3})


def test_a_second_run_into_the_same_out_keeps_the_first(folders, tmp_path):
    train(tiny_config(folders, tmp_path / "k8"))
    first = {name: (tmp_path / "k8" / name).read_bytes() for name in ("model.pt", "checkpoint.pt", "metrics.jsonl")}
    with pytest.raises(IsclError, match="k8: already holds a training run"):
        train(tiny_config(folders, tmp_path / "k8", seed=1))
    assert {name: (tmp_path / "k8" / name).read_bytes() for name in first} == first
    train(tiny_config(folders, tmp_path / "k8", seed=1), overwrite=True)
    steps = [json.loads(line)["step"] for line in (tmp_path / "k8" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert (tmp_path / "k8" / "model.pt").read_bytes() != first["model.pt"]


def stop_at(step):
    def progress(report):
        if report.step == step:
            raise KeyboardInterrupt
    return progress


def test_resume_works_from_another_directory_and_after_a_torn_metrics_line(tmp_path, monkeypatch):
    (tmp_path / "raw").mkdir()
    (tmp_path / "ref").mkdir()
    write_stack(tmp_path / "raw" / "a.tif", 1)
    write_stack(tmp_path / "ref" / "b.tif", 2)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(("raw", "ref"), "run"), progress=stop_at(3))
    with (tmp_path / "run" / "metrics.jsonl").open("a") as metrics:
        metrics.write('{"step": 4, "d_tot')  # what a power loss leaves
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    train(None, resume=tmp_path / "run")
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["noisy"] == [str(tmp_path / "raw")]


def test_a_full_disk_during_a_checkpoint_is_one_line_and_leaves_the_last_checkpoint(folders, small_disk):
    config = tiny_config(folders, small_disk.path / "run", steps=6, preview_every=1000)
    with pytest.raises(IsclError, match="checkpoint.pt: no space left on device"):
        train(config, progress=lambda report: small_disk.fill() if report.step == 3 else None)
    assert small_disk.files() == ["run", "run/checkpoint.pt", "run/config.json", "run/metrics.jsonl"]
    assert load_trusted_dict(small_disk.path / "run" / "checkpoint.pt", "checkpoint")["step"] == 2


def test_a_full_disk_while_creating_the_run_folder_leaves_nothing(folders, small_disk):
    small_disk.fill()
    with pytest.raises(IsclError, match="no space left on device"):
        train(tiny_config(folders, small_disk.path / "run"))
    assert small_disk.files() == []


@pytest.mark.slow
def test_two_concurrent_trainings_into_one_out_one_is_refused(folders, tmp_path):
    noisy, clean = folders
    network = [part for name, value in TINY_NETWORK.items() for part in ("--net", f"{name}={value}")]
    command = [sys.executable, "-m", "iscl_cli", "train", "--noisy", noisy, "--clean", clean, "--out", tmp_path / "run",
               "--preset", "quick", "--steps", "30", "--batch-size", "2", "--patch-size", "16", "--device", "cpu",
               "--quiet", *network]
    runs = [subprocess.Popen([str(part) for part in command] + ["--seed", str(seed)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    outcomes = sorted((run.wait(timeout=300), run.stderr.read()) for run in runs)
    assert [code for code, _ in outcomes] == [0, 1], outcomes
    assert "is in use by another iscl train process" in outcomes[1][1] or "already holds a training run" in outcomes[1][1]
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))


@pytest.mark.parametrize("damage, message", [
    (lambda state: state.pop("config"), "damaged training checkpoint: it lacks 'config'"),
    (lambda state: state["config"].update(colour=3), "damaged training checkpoint .*colour"),
    (lambda state: state.pop("model"), "damaged training checkpoint: it lacks 'model'"),
    (lambda state: state["intensity"].update(noisy_low=float("nan")), "damaged training checkpoint .*not two finite"),
])
def test_a_damaged_checkpoint_is_one_line_on_resume(folders, tmp_path, damage, message):
    train(tiny_config(folders, tmp_path / "run"))
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    damage(state)
    torch.save(state, tmp_path / "run" / "checkpoint.pt")
    with pytest.raises(IsclError, match=f"checkpoint.pt: {message}"):
        train(None, resume=tmp_path / "run")


@pytest.mark.parametrize("network, message", [
    (dict(gen_base=4096), r"--net: networks of this size need about [\d.]+ [GT]iB of memory to train"),
    (dict(ext_depth=100_000), "--net: ext_depth=100000: more layers than any iscl network has"),
])
def test_networks_too_large_to_train_are_refused_before_allocating(network, message):
    with pytest.raises(IsclError, match=message):
        make_train_config(["raw"], ["ref"], "quick", network=network)


def test_unwritable_out_is_refused_before_training(folders, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(IsclError, match="cannot write the run folder"):
        train(tiny_config(folders, blocker / "run"))


def test_images_smaller_than_the_patch(folders, tmp_path):
    with pytest.raises(IsclError, match="smaller than the 64x64 training patch"):
        train(tiny_config(folders, tmp_path / "run", patch_size=64))
    assert not (tmp_path / "run" / "model.pt").exists()


def test_constant_training_data_is_refused(tmp_path):
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.full((2, 32, 32), 100, np.uint16), photometric="minisblack")
    with pytest.raises(IsclError, match="no contrast"):
        train(tiny_config((str(flat), str(flat)), tmp_path / "run"))


# Measured on 2026-12-02 (docs/training.md "Evidence that it learns"): +4.70 dB with these
# images (13.67 -> 18.37 dB); issue 13 asks the quick preset for 3 dB on the demo.
LEARNED_MARGIN_DB = 3.0


@pytest.mark.slow
def test_the_quick_preset_learns_to_denoise_unpaired_phantoms(tmp_path, run_cli):
    # Seed 2: other images than the demo's (seed 0) and the exploration data the presets were chosen on (seed 100).
    data = make_unpaired_set(tmp_path / "data", phantom="em", noise="charging", n_train=16, n_test=2,
                             shape=(128, 128), seed=2)
    # All of the preset's steps: from random weights, 300 steps are not yet back at the input's quality.
    trained = run_cli("train", "--noisy", data["noisy"], "--clean", data["clean"], "--out", tmp_path / "run",
                      "--preset", "quick", "--device", "cpu", "--quiet")
    assert trained.exit_code == 0, trained.output
    denoised = run_cli("denoise", data["test_noisy"], "-o", tmp_path / "out", "--model", tmp_path / "run" / "model.pt",
                       "--device", "cpu", "--quiet")
    assert denoised.exit_code == 0, denoised.output
    noisy, clean = read_stack(data["test_noisy"]), read_stack(data["test_clean"])
    scores = stack_scores(read_stack(tmp_path / "out" / "test_noisy.tif"), noisy, clean)
    gain = scores["denoised_psnr"] - scores["noisy_psnr"]
    assert gain >= LEARNED_MARGIN_DB, scores
    assert "follows the image's structure" not in denoised.stderr  # the quality check sees noise removed
