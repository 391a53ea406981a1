"""The human-readable card ``iscl info`` prints for a model file."""

from __future__ import annotations

from typing import Any


def format_card(card: dict[str, Any]) -> str:
    """Architecture, training data, steps, intensity mapping and versions, one topic a line."""
    provenance = card.get("provenance", {})
    train_config = provenance.get("train_config", {})
    mapping = card["intensity"]
    config = card["config"]
    lines = [
        f"model        {card['path']}",
        f"networks     {', '.join(card['nets'])}" + ("  (exported: inference only)" if "G" not in card["nets"] else ""),
        "architecture " + ", ".join(f"{k}={v}" for k, v in config.items()),
        f"intensity    noisy [{mapping['noisy_low']:g}, {mapping['noisy_high']:g}] -> [-1, 1], "
        f"clean [{mapping['clean_low']:g}, {mapping['clean_high']:g}] -> [-1, 1]  ({mapping['source']})",
        f"trained      {provenance.get('steps', '?')} steps, preset {train_config.get('preset', '?')}, "
        f"batch {train_config.get('batch_size', '?')}, patch {train_config.get('patch_size', '?')}, "
        f"on {provenance.get('device', '?')}, {provenance.get('trained', '?')}",
    ]
    for domain in ("noisy", "clean"):
        data = provenance.get(f"{domain}_data")
        if data:
            lines.append(f"{domain + ' data':<13}{data['slices']} slices, {data['pixels'] / 1e6:.1f} Mpixel from "
                         f"{len(data['volumes'])} volume(s): {', '.join(data['volumes'][:3])}"
                         + (" ..." if len(data["volumes"]) > 3 else ""))
    choice = provenance.get("ensemble_weight")
    if choice:
        chosen, paper = (choice["psnr_by_gamma"][f"{gamma:g}"] for gamma in (choice["gamma"], 0.5))
        lines.append(f"ensemble     gamma {choice['gamma']:g} chosen on {choice['pairs']} noise-transplant pairs of training "
                     f"slices ({chosen:.2f} dB there, {paper:.2f} dB at the paper's 0.5)")
    check = provenance.get("noise_check")
    if check:
        lines.append(f"noise check  removed-noise structure {check['structure']:+.2f} on {len(check['per_slice'])} noisy "
                     f"training slices ({'WARNING: above' if check['warning'] else 'below'} {check['threshold']:.2f})")
    lines.append(f"versions     iscl {provenance.get('iscl_version', '?')}, torch {provenance.get('torch_version', '?')}")
    return "\n".join(lines)
