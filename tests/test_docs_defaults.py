"""The docs state the defaults the code has: the preset table is generated from PRESETS,
and no page repeats a preset figure that differs from it."""

import re
from pathlib import Path

from iscl_cli.preset_table import PRESET_TABLE_END, PRESET_TABLE_START, render
from iscl_cli.train import DEFAULT_PRESET, PRESETS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_preset_table_in_training_md_is_current():
    text = (ROOT / "docs" / "training.md").read_text()
    table = text[text.index(PRESET_TABLE_START):text.index(PRESET_TABLE_END) + len(PRESET_TABLE_END)]
    assert table == render(), "regenerate the table with: python -m iscl_cli.preset_table"
    assert f"`{DEFAULT_PRESET}` is the default" in text


def test_every_extractor_neighbourhood_named_in_the_docs_is_a_presets():
    seen = {f"{2 * depth + 1}x{2 * depth + 1}" for depth in
            (TrainConfig.from_preset(name, noisy=[], clean=[]).model_config().ext_depth for name in PRESETS)}
    for page in PAGES:
        for side, other in re.findall(r"(\d+) ?x ?(\d+) neighbourhood", page.read_text()):
            assert f"{side}x{other}" in seen, f"{page.name}: a {side}x{other} neighbourhood is no preset's"


def test_no_page_gives_the_quick_preset_other_steps_than_presets():
    steps = PRESETS["quick"]["steps"]
    for page in PAGES:
        for claimed in re.findall(r"`quick` preset \((\d+) steps", page.read_text()):
            assert int(claimed) == steps, f"{page.name}: the quick preset has {steps} steps, not {claimed}"
