import pytest

from iscl_cli import demo, train
from iscl_cli.errors import IsclError
from tests.tiny import TINY_NETWORK


@pytest.mark.slow
def test_the_demo_runs_end_to_end_on_a_tiny_setting(tmp_path, monkeypatch):
    # The code path only (2 steps of tiny networks): the demo's quality is measured in docs/quickstart.md.
    monkeypatch.setitem(demo.DEMO_SIZES, "quick", (2, 2, 48, "quick"))
    monkeypatch.setitem(train.PRESETS, "quick", {**train.PRESETS["quick"], "steps": 2, "batch_size": 2,
                                                 "patch_size": 16, "network": dict(TINY_NETWORK)})
    lines = []
    result = demo.run_demo(tmp_path, device="cpu", say=lines.append)
    assert {"noisy_psnr", "noisy_ssim", "denoised_psnr", "denoised_ssim"} <= set(result)
    assert result["noisy_psnr"] > 0 and 0 < result["noisy_ssim"] <= 1
    assert (tmp_path / "preview.png").stat().st_size > 0
    assert (tmp_path / "denoised" / "test_noisy.tif").is_file()
    assert any(line.startswith("4/4 scores") for line in lines)
    assert any("has not learned to denoise yet" in line for line in lines), "2 steps at learning rate 0 learn nothing"
    with pytest.raises(IsclError, match="holds an earlier demo"):
        demo.run_demo(tmp_path, device="cpu", say=lines.append)
