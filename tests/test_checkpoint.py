import os
import pickle
import time

import pytest
import torch

from iscl_cli.checkpoint import load_model, newest_model, read_model_card, resolve_model_path
from iscl_cli.errors import IsclError
from tests.tiny import tiny_model, tiny_model_file


def test_model_file_round_trip_gives_the_same_output(tmp_path):
    path = tiny_model_file(tmp_path / "model.pt")
    loaded = load_model(path)
    x = torch.rand(1, 1, 20, 24) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded.model.denoise(x), tiny_model().denoise(x))
    assert not loaded.model.training
    assert loaded.mapping.noisy_high == 1000.0
    assert loaded.card["nets"] == ["D_X", "D_Y", "F", "G", "H"]


def test_export_keeps_only_the_inference_networks(tmp_path):
    full = tiny_model_file(tmp_path / "full.pt")
    small = tiny_model_file(tmp_path / "small.pt", export=True)
    assert read_model_card(small)["nets"] == ["F", "H"]
    assert small.stat().st_size < full.stat().st_size
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode():
        assert torch.equal(load_model(small).model.denoise(x), load_model(full).model.denoise(x))


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_model_file_cannot_run_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "iscl-model", "x": Payload()}, path)
    with pytest.raises(IsclError, match="evil.pt: not a readable model file"):
        load_model(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("content", [b"", b"not a model", pickle.dumps([1, 2]), pickle.dumps({"a": 1}, protocol=4),
                                     bytes(range(256)) * 20])
def test_foreign_files_give_one_line_without_torch_advice_or_warnings(tmp_path, content, recwarn):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(IsclError) as error:
        load_model(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)
    assert "weights_only" not in str(error.value)
    assert not recwarn.list  # torch's "Detected pickle protocol 4" must not reach stderr


def test_a_file_holding_objects_says_so_without_the_dangerous_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "iscl-model", "x": Payload()}, path)
    with pytest.raises(IsclError) as error:
        load_model(path)
    assert "not a file of tensors and plain values (damaged, not written by iscl, or tampered with); iscl never " \
           "loads anything else" in str(error.value)
    assert "weights_only" not in str(error.value)


def test_a_tiny_file_declaring_huge_networks_is_refused_before_allocating(tmp_path):
    path = tiny_model_file(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["gen_base"] = 4096  # would take about 150 GB to build
    torch.save(payload, path)
    with pytest.raises(IsclError, match=r"damaged model file \(its architecture needs \d+ values in network F, "
                                        r"the file holds \d+\)"):
        load_model(path)


def test_a_file_declaring_absurdly_deep_networks_is_refused_before_building(tmp_path):
    path = tiny_model_file(tmp_path / "model.pt", export=True)
    payload = torch.load(path, weights_only=True)
    payload["config"]["disc_layers"] = 10**7  # the discriminators are not in an exported file
    torch.save(payload, path)
    with pytest.raises(IsclError, match="disc_layers=10000000: more layers than any iscl network has"):
        load_model(path)


def test_missing_model_file(tmp_path):
    with pytest.raises(IsclError, match="model file not found"):
        load_model(tmp_path / "nope.pt")


def test_default_model_is_the_newest_run(tmp_path):
    older = tiny_model_file(tmp_path / "iscl-runs" / "run-a" / "model.pt")
    newer = tiny_model_file(tmp_path / "iscl-runs" / "run-b" / "model.pt")
    now = time.time()
    os.utime(older, (now, now))
    os.utime(newer, (now - 100, now - 100))
    assert newest_model(tmp_path) == older
    assert resolve_model_path(None, tmp_path) == older
    assert resolve_model_path(newer, tmp_path) == newer


def test_no_default_model_is_a_clear_error(tmp_path):
    with pytest.raises(IsclError, match="no model given and none found"):
        resolve_model_path(None, tmp_path)


@pytest.mark.parametrize("damage", [
    lambda payload: payload.pop("intensity"),
    lambda payload: payload.pop("config"),
    lambda payload: payload["config"].update(gen_base="wide"),
    lambda payload: payload["config"].update(colour=3),
    lambda payload: payload["intensity"].clear(),
    lambda payload: payload["nets"]["F"].popitem(),
    lambda payload: payload["intensity"].update(noisy_low=float("nan"), noisy_high=float("nan")),
    lambda payload: payload["intensity"].update(clean_high=-1e9),
    lambda payload: payload["nets"]["F"][next(iter(payload["nets"]["F"]))].fill_(float("nan")),
    lambda payload: payload.update(format_version="1"),
])
def test_a_damaged_model_file_gives_one_line(tmp_path, damage):
    path = tiny_model_file(tmp_path / "model.pt")
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(IsclError, match="model.pt: damaged model file") as error:
        load_model(path)
    assert "\n" not in str(error.value)
