"""The model file and training checkpoints.

Both are plain dictionaries of tensors and Python values written with ``torch.save`` and
read with ``torch.load(weights_only=True)``: a model file can never run code. Writes are
atomic (temporary file, then rename).
"""

from __future__ import annotations

import logging
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from iscl_cli.errors import IsclError
from iscl_cli.intensity import IntensityMapping
from iscl_cli.io.atomic import atomic_path
from iscl_cli.memory import format_bytes, memory_budget
from models.iscl import ISCL, ISCLConfig

MODEL_FORMAT = "iscl-model"
MODEL_FORMAT_VERSION = 1
RUNS_DIR = "iscl-runs"
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
INFERENCE_NETS = ("F", "H")
ALL_NETS = ("F", "G", "H", "D_X", "D_Y")
DEPTH_SETTINGS = ("gen_blocks", "ext_depth", "disc_layers", "unet_depth")
LAYER_LIMIT = 512
"""More layers than any iscl network has (the paper's extractor has 20): a model file
declaring more is damaged or hostile, and merely building it would take minutes."""

log = logging.getLogger("iscl")


@dataclass
class LoadedModel:
    """A model file read back: the networks (eval mode), the intensity mapping and its card."""

    path: Path
    model: ISCL
    mapping: IntensityMapping
    card: dict[str, Any]


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file next to ``path``, then rename over it."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_trusted_dict(path: Path, what: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` with every failure turned into one IsclError line.

    torch's own messages are not passed on: for files holding other objects they advise
    loading with ``weights_only=False``, which would let the file run code.
    """
    if not path.is_file():
        raise IsclError(f"{what} not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise IsclError(f"not a readable {what}: not a file of tensors and plain values (damaged, not written by "
                        "iscl, or tampered with); iscl never loads anything else", path) from None
    except Exception:  # torch raises many types for foreign or damaged files
        raise IsclError(f"not a readable {what}: damaged, truncated, or not written by iscl", path) from None
    if not isinstance(payload, dict):
        raise IsclError(f"not an iscl {what}", path)
    return payload


def save_model(path: Path, model: ISCL, mapping: IntensityMapping, provenance: dict[str, Any],
               export: bool = False) -> None:
    """Write the model file: weights (all five nets, or F and H only with ``export``),
    architecture config, intensity mapping and provenance."""
    nets = INFERENCE_NETS if export else ALL_NETS
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "config": model.config.to_dict(),
        "nets": {name: {k: v.detach().cpu() for k, v in getattr(model, name).state_dict().items()} for name in nets},
        "intensity": mapping.to_dict(),
        "provenance": provenance,
    }
    save_atomic(payload, path)


def load_model(path: Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Read a model file written by ``save_model``; the networks come back in eval mode."""
    payload = load_trusted_dict(path, "model file")
    if payload.get("format") != MODEL_FORMAT:
        raise IsclError("not an iscl model file (it may be a training checkpoint: use the run's model.pt)", path)
    version = payload.get("format_version", 0)
    if not isinstance(version, int):
        raise IsclError(f"damaged model file (format version {version!r})", path)
    if version > MODEL_FORMAT_VERSION:
        raise IsclError(f"written by a newer iscl (model format {version}); upgrade iscl", path)
    try:
        mapping = IntensityMapping.from_dict(payload["intensity"])
        model = build_model(ISCLConfig.from_dict(payload["config"]), payload["nets"])
        card = {"path": str(path), "nets": sorted(payload["nets"]), "config": payload["config"],
                "intensity": payload["intensity"], "provenance": payload.get("provenance", {})}
    except KeyError as error:
        raise IsclError(f"damaged model file: it lacks {error}", path) from None
    except (RuntimeError, AttributeError, TypeError, ValueError) as error:
        raise IsclError(f"damaged model file ({str(error).splitlines()[0]})", path) from None
    missing = [name for name in INFERENCE_NETS if name not in payload["nets"]]
    if missing:
        raise IsclError(f"model file lacks the {', '.join(missing)} network(s)", path)
    model.to(device).eval()
    return LoadedModel(path, model, mapping, card)


def build_model(config: ISCLConfig, nets: dict[str, dict[str, torch.Tensor]]) -> ISCL:
    """The networks of ``config`` holding the weights ``nets`` (by network name).

    Before anything is allocated the architecture is checked against the weights (on
    torch's meta device, which holds no memory): a few kilobytes claiming huge networks
    raise ValueError instead of allocating gigabytes. Non-finite weights raise too.
    """
    skeleton = network_skeleton(config)
    for name, state in nets.items():
        needed = sum(tensor.numel() for tensor in getattr(skeleton, name).state_dict().values())
        held = sum(tensor.numel() for tensor in state.values())
        if needed != held:
            raise ValueError(f"its architecture needs {needed} values in network {name}, the file holds {held}")
        if not all(torch.isfinite(tensor).all() for tensor in state.values() if tensor.is_floating_point()):
            raise ValueError(f"network {name} holds NaN or infinite weights")
    needed = weight_bytes(skeleton)
    if needed > memory_budget():
        raise ValueError(f"its networks would need {format_bytes(needed)} of memory, more than "
                         f"the {format_bytes(memory_budget())} iscl allows itself here")
    model = ISCL(config)
    for name, state in nets.items():
        getattr(model, name).load_state_dict(state)
    return model


def network_skeleton(config: ISCLConfig) -> ISCL:
    """The networks of ``config`` on torch's meta device: shapes only, no memory. Raises
    ValueError for more layers than ``LAYER_LIMIT`` (building those alone would take minutes)."""
    too_deep = [name for name in DEPTH_SETTINGS if getattr(config, name) > LAYER_LIMIT]
    if too_deep:
        raise ValueError(f"{too_deep[0]}={getattr(config, too_deep[0])}: more layers than any iscl network has")
    with torch.device("meta"):
        return ISCL(config)


def weight_bytes(model: ISCL) -> int:
    """The memory of ``model``'s weights and buffers."""
    return sum(tensor.numel() * tensor.element_size() for tensor in model.state_dict().values())


def read_model_card(path: Path) -> dict[str, Any]:
    """The description of a model file (or a run folder's) that ``iscl info`` prints (read
    through ``load_model``, so it is checked)."""
    return load_model(model_file(path)).card


def model_file(path: Path) -> Path:
    """``path`` itself, or the model file of a run folder."""
    if not path.is_dir():
        return path
    if not (path / MODEL_FILE).is_file():
        raise IsclError(f"this run folder holds no {MODEL_FILE} (has its training finished? "
                        f"`iscl train --resume {path}` finishes it)", path)
    return path / MODEL_FILE


def newest_model(root: Path) -> Path | None:
    """The newest ``model.pt`` under ``root/iscl-runs/``, the default for ``iscl denoise``."""
    candidates = list((root / RUNS_DIR).glob(f"*/{MODEL_FILE}"))
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def resolve_model_path(model: Path | None, root: Path) -> Path:
    """``--model`` (a model file or a run folder) if given, else the newest trained model
    under ``root``; says which on stderr."""
    if model is not None:
        return model_file(model)
    found = newest_model(root)
    if found is None:
        raise IsclError(f"no model given and none found under {root / RUNS_DIR}/; "
                        "train one with `iscl train` or pass --model")
    log.info("using model %s (newest under %s/)", found, RUNS_DIR)
    return found
