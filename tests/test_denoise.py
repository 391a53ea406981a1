import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from iscl_cli.checkpoint import load_model
from iscl_cli.denoise import denoise_volume, plan_outputs, run_plan
from iscl_cli.inference import TileOptions, denoise_image, tile_alignment
from iscl_cli.errors import IsclError
from iscl_cli.io import open_volumes
from tests.array_volume import ArrayVolume
from tests.tiny import tiny_model_file


@pytest.fixture
def loaded(tmp_path):
    return load_model(tiny_model_file(tmp_path / "model.pt"))


def test_denoise_image_matches_the_model_on_the_whole_slice(loaded):
    image = np.random.default_rng(0).uniform(0, 1000, size=(45, 61)).astype(np.float32)
    result = denoise_image(image, loaded.model, loaded.mapping, TileOptions(tile_size=256, symmetries=1))
    x = torch.from_numpy(loaded.mapping.to_model(image))[None, None]
    with torch.inference_mode():
        expected = loaded.mapping.to_physical(loaded.model.denoise(x)[0, 0].numpy())
    assert result.shape == image.shape
    np.testing.assert_allclose(result, expected, atol=1e-2)


def test_volume_is_streamed_slice_by_slice_with_noise_output(loaded, tmp_path):
    volume = ArrayVolume(np.random.default_rng(1).uniform(0, 1000, size=(5, 33, 40)))
    denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(), noise_path=tmp_path / "out.noise.tif")
    written = volume.written[tmp_path / "out.tif"]
    assert written.shape == (5, 33, 40)
    assert volume.reads == 5
    noise = tifffile.imread(tmp_path / "out.noise.tif")
    np.testing.assert_allclose(noise, volume.data - written, atol=1e-3)
    per_slice = denoise_image(volume.data[3], loaded.model, loaded.mapping, TileOptions())
    np.testing.assert_array_equal(written[3], per_slice)


def test_slices_smaller_than_a_batch_of_tiles_share_model_calls_on_a_gpu():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert TileOptions(batch_size=4).slices_per_call((33, 40), 4, gpu) == 4
    assert TileOptions(tile_size=64, overlap=16, batch_size=8).slices_per_call((100, 60), 4, gpu) == 4
    assert TileOptions().slices_per_call((1024, 1024), 4, gpu) == 1  # 9 tiles: a batch of its own
    assert TileOptions(batch_size=4).slices_per_call((33, 40), 4, cpu) == 1  # slower on a CPU (docs/benchmarks.md)


@contextmanager
def torch_own_convolutions():
    """torch's own CPU convolutions, which give a tile the same result in a batch of any
    size. oneDNN (one tile against several) and NNPACK (batches of 16 or more) choose their
    algorithms by batch size and round differently, by up to 1e-6 in model units
    (measured), as between a slice's full batches and its last, part-filled one."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "TF32 acceleration")  # torch's note on Intel GPUs, on any oneDNN flag
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
            yield


@pytest.mark.parametrize("symmetries", [1, 8])
def test_packed_slices_are_pixel_identical_to_slice_by_slice(loaded, tmp_path, symmetries):
    # 37 x 53 slices at 32-pixel tiles are 2 x 3 tiles: 3 slices per batch of 18, and the
    # 7 slices end on a part-filled call.
    data = np.random.default_rng(6).uniform(0, 1000, size=(7, 37, 53)).astype(np.float32)
    tiles = TileOptions(tile_size=32, overlap=8, batch_size=18, symmetries=symmetries)
    per_call = tiles.slices_per_call((37, 53), tile_alignment(loaded.model), torch.device("cuda"))
    assert per_call == 3  # what a GPU would take; a CPU takes 1, so it is passed on
    with torch_own_convolutions():
        volume = ArrayVolume(data)
        denoise_volume(volume, loaded, tmp_path / "out.tif", tiles, slices_per_call=per_call)
        alone = np.stack([denoise_image(image, loaded.model, loaded.mapping, tiles) for image in data])
    np.testing.assert_array_equal(volume.written[tmp_path / "out.tif"], alone)
    volume = ArrayVolume(data)
    denoise_volume(volume, loaded, tmp_path / "out.tif", tiles, slices_per_call=per_call)  # oneDNN: to its rounding
    np.testing.assert_allclose(volume.written[tmp_path / "out.tif"], alone, rtol=1e-6, atol=1e-4)


def test_a_uint16_stack_of_small_slices_is_written_as_slice_by_slice(loaded, tmp_path):
    data = write_tiff(tmp_path / "vol.tif", slices=9, shape=(29, 45))
    (volume,) = open_volumes([str(tmp_path / "vol.tif")])
    with torch_own_convolutions():
        denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=2), slices_per_call=4)
        alone = [denoise_image(image.astype(np.float32), loaded.model, loaded.mapping, TileOptions(symmetries=2))
                 for image in data]
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out.tif"),
                                  np.stack([np.clip(np.rint(image), 0, 65535) for image in alone]).astype(np.uint16))


@pytest.mark.parametrize("background_writing", [True, False])
def test_writing_in_a_thread_or_not_writes_the_same(loaded, tmp_path, background_writing):
    volume = ArrayVolume(np.random.default_rng(7).uniform(0, 1000, size=(9, 20, 30)))
    denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=1), noise_path=tmp_path / "n.tif",
                   background_writing=background_writing)
    expected = np.stack([denoise_image(image, loaded.model, loaded.mapping, TileOptions(symmetries=1))
                         for image in volume.data])
    np.testing.assert_array_equal(volume.written[tmp_path / "out.tif"], expected)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "n.tif"), volume.data - expected)


@pytest.mark.parametrize("failure", ["refused slice", "interrupt"])
def test_a_failure_while_computing_stops_the_writer_and_leaves_nothing(loaded, tmp_path, failure):
    data = write_tiff(tmp_path / "vol.tif", slices=12, shape=(20, 24))
    if failure == "refused slice":
        data[9] = 60000  # far outside the model's 0..1000: refused when its turn comes
        tifffile.imwrite(tmp_path / "vol.tif", data, imagej=True, metadata={"axes": "ZYX"})
    (volume,) = open_volumes([str(tmp_path / "vol.tif")])
    computed = []

    def on_slice():
        computed.append(1)
        if failure == "interrupt" and len(computed) == 6:
            raise KeyboardInterrupt

    threads = threading.active_count()
    with pytest.raises(KeyboardInterrupt if failure == "interrupt" else IsclError):
        denoise_volume(volume, loaded, tmp_path / "out" / "vol.tif", TileOptions(symmetries=1),
                       noise_path=tmp_path / "out" / "vol.noise.tif", on_slice=on_slice, slices_per_call=4)
    assert list((tmp_path / "out").iterdir()) == [] and threading.active_count() == threads


class DiskFullVolume(ArrayVolume):
    """A volume whose writer fails after taking the first slice, as on a full disk."""

    def write(self, out_path, slices, note, overwrite=False):
        next(iter(slices))
        raise IsclError("disk full", out_path)


def test_a_failing_writer_stops_the_computing(loaded, tmp_path):
    volume = DiskFullVolume(np.ones((400, 16, 16)))
    with pytest.raises(IsclError, match="disk full"):
        denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=1))
    assert volume.reads < 100


def test_a_failing_write_leaves_no_noise_file(loaded, tmp_path):
    volume = DiskFullVolume(np.ones((2, 16, 16)))
    with pytest.raises(IsclError, match="disk full"):
        denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(), noise_path=tmp_path / "n.tif")
    assert list(tmp_path.glob("n.tif*")) == [] and list(tmp_path.glob(".n.tif*")) == []


def write_tiff(path, slices=3, shape=(50, 70)):
    data = np.random.default_rng(2).integers(0, 1000, size=(slices, *shape)).astype(np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
    return data


def test_plan_refuses_existing_duplicate_and_input_outputs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_tiff(tmp_path / "a" / "scan.tif")
    write_tiff(tmp_path / "b" / "scan.tif")
    write_tiff(tmp_path / "other.tif")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "other.tif").write_bytes(b"old")
    write_tiff(tmp_path / "other.noise.tif")
    specs = [str(tmp_path / "a" / "scan.tif"), str(tmp_path / "b" / "scan.tif"), str(tmp_path / "other.tif"),
             str(tmp_path / "other.noise.tif"), str(tmp_path / "missing.tif")]
    jobs = {Path(job.spec).relative_to(tmp_path).as_posix(): job
            for job in plan_outputs(specs, tmp_path / "out", write_noise=True).jobs}
    # Inputs are opened together, so same-named files get numbered outputs (with a note).
    assert jobs["a/scan.tif"].error is None and jobs["b/scan.tif"].output.name == "scan_2.tif"
    assert "exists; pass --overwrite" in jobs["other.tif"].error
    assert "would also be written" in jobs["other.noise.tif"].error
    assert "missing.tif" in jobs["missing.tif"].error
    onto_input = plan_outputs([str(tmp_path / "other.tif")], tmp_path).jobs[0].error
    assert "is an input" in onto_input
    assert plan_outputs([str(tmp_path / "other.tif")], tmp_path / "out", overwrite=True).jobs[0].error is None


def test_run_plan_goes_on_after_a_failure(loaded, tmp_path):
    data = write_tiff(tmp_path / "good.tif")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    plan = plan_outputs([str(tmp_path / "bad.tif"), str(tmp_path / "good.tif")], tmp_path / "out")
    jobs = run_plan(plan, loaded, tmp_path / "out", TileOptions())
    assert jobs[0].error and "bad.tif" in jobs[0].error
    assert jobs[1].error is None
    result = tifffile.imread(tmp_path / "out" / "good.tif")
    assert result.shape == data.shape and result.dtype == np.uint16


def test_an_output_that_appears_after_planning_is_not_replaced(loaded, tmp_path):
    write_tiff(tmp_path / "vol.tif")
    plan = plan_outputs([str(tmp_path / "vol.tif")], tmp_path / "out", write_noise=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "vol.tif").write_bytes(b"another process's result")
    (job,) = run_plan(plan, loaded, tmp_path / "out", TileOptions(symmetries=1))
    assert "out/vol.tif: appeared while this output was being written" in job.error
    assert (tmp_path / "out" / "vol.tif").read_bytes() == b"another process's result"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["vol.tif"]


def test_overwrite_replaces_an_output_that_appeared_after_planning(loaded, tmp_path):
    data = write_tiff(tmp_path / "vol.tif")
    plan = plan_outputs([str(tmp_path / "vol.tif")], tmp_path / "out", overwrite=True)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "vol.tif").write_bytes(b"old")
    (job,) = run_plan(plan, loaded, tmp_path / "out", TileOptions(symmetries=1))
    assert job.error is None and tifffile.imread(tmp_path / "out" / "vol.tif").shape == data.shape


def test_a_nan_pixel_stays_nan_and_does_not_spread(loaded, tmp_path, notes):
    data = np.random.default_rng(3).uniform(100, 900, size=(2, 40, 48)).astype(np.float32)
    data[1, 10, 12] = np.nan
    volume = ArrayVolume(data)
    denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=1))
    written = volume.written[tmp_path / "out.tif"]
    assert np.isnan(written[1, 10, 12]) and np.count_nonzero(~np.isfinite(written)) == 1
    filled = data[1].copy()
    filled[10, 12] = data[1, 10, 11]  # its nearest finite neighbour (one of them)
    far = denoise_image(filled, loaded.model, loaded.mapping, TileOptions(symmetries=1))
    np.testing.assert_allclose(written[1, 30:, 30:], far[30:, 30:], atol=1e-3)
    assert "array.tif: 1 NaN or infinite pixel(s) in 1 slice(s) are kept as they were" in notes.text


def test_a_slice_mostly_outside_the_model_range_is_refused_unless_allowed(loaded, tmp_path, notes):
    volume = ArrayVolume(np.random.default_rng(4).uniform(2000, 3000, size=(2, 32, 32)))  # the model maps 0..1000
    with pytest.raises(IsclError, match=r"array.tif: slice 0: 100.0% of its pixels \(values 2[\d.]+ to 2[\d.]+\) lie "
                                        r"outside the model's input range \[0, 1000\] and would be clipped"):
        denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=1))
    denoise_volume(volume, loaded, tmp_path / "out.tif", TileOptions(symmetries=1), allow_clipping=True)
    assert "array.tif: 100.0 % of the pixels lie outside the model's input range [0, 1000]" in notes.text


def test_a_few_pixels_outside_the_model_range_get_a_note(loaded, tmp_path, notes):
    data = np.random.default_rng(5).uniform(0, 1000, size=(1, 40, 40))
    data[0, :8] = 1500  # 20 % of the pixels
    denoise_volume(ArrayVolume(data), loaded, tmp_path / "out.tif", TileOptions(symmetries=1))
    assert "20.0 % of the pixels lie outside" in notes.text


def test_an_output_folder_inside_an_input_folder_is_refused(tmp_path):
    (tmp_path / "a" / "ser").mkdir(parents=True)
    write_tiff(tmp_path / "a" / "ser" / "vol.tif")
    for out in (tmp_path / "a" / "ser", tmp_path / "a" / "ser" / "denoised", tmp_path / "a" / "denoised"):
        with pytest.raises(IsclError, match="is inside the input folder .*a would denoise the outputs again|"
                                            "is inside the input folder .*ser: a later run"):
            plan_outputs([str(tmp_path / "a")], out)
    assert plan_outputs([str(tmp_path / "a" / "ser" / "vol.tif")], tmp_path / "a" / "denoised").jobs[0].error is None


def test_a_full_disk_during_a_tiff_write_says_so_and_leaves_nothing(loaded, tmp_path, small_disk):
    write_tiff(tmp_path / "vol.tif", slices=4, shape=(512, 512))  # 2 MiB of output on a 1 MiB disk
    plan = plan_outputs([str(tmp_path / "vol.tif")], small_disk.path / "out")
    (job,) = run_plan(plan, loaded, small_disk.path / "out", TileOptions(symmetries=1))
    assert job.error.endswith("out/vol.tif: no space left on device; nothing was written")
    assert small_disk.files() == ["out"]


@pytest.mark.parametrize("options, message", [
    (dict(tile_size=8), "--tile-size"), (dict(overlap=600), "--overlap"), (dict(blend="box"), "--blend"),
    (dict(batch_size=0), "--batch-size")])
def test_bad_tile_options(options, message):
    with pytest.raises(IsclError, match=message):
        TileOptions(**options).validated()
