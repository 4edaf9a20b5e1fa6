from __future__ import annotations

import os
from pathlib import Path

import pytest

from wmtp_assets.files.layout import Layout
from wmtp_assets.files.trainer_view import TrainerPathError, link_dataset, link_model
from wmtp_assets.validate.trainer_view import trainer_path_of_model, trainer_path_resolves


def test_links_are_relative_and_resolve_to_the_artifacts(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "storage")
    layout.model("micro_ref").root.mkdir(parents=True)
    layout.dataset("mbpp").root.mkdir(parents=True)
    model = link_model(layout, "micro_ref")
    dataset = link_dataset(layout, "mbpp")
    assert model == layout.root / "models" / "micro-reference"
    assert os.readlink(model) == "../models_v2/micro-ref"
    assert os.readlink(dataset) == "../datasets_v2/mbpp"
    assert trainer_path_of_model(layout, "micro_ref").passed
    assert link_model(layout, "micro-ref") == model  # idempotent, by folder name too
    moved = tmp_path / "moved"
    layout.root.rename(moved)  # relative links survive a move of the root
    assert (moved / "models" / "micro-reference").resolve() == (moved / "models_v2" / "micro-ref")
    assert not [p for p in moved.rglob(".*tmp-*")]


def test_a_wrong_link_is_repointed_atomically(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "storage")
    layout.dataset("mbpp").root.mkdir(parents=True)
    link = layout.root / "datasets" / "mbpp"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path)  # absolute and wrong
    failed = trainer_path_resolves(link, layout.dataset("mbpp").root)
    assert not failed.passed and "absolute" in failed.summary
    link_dataset(layout, "mbpp")
    assert trainer_path_resolves(link, layout.dataset("mbpp").root).passed


def test_a_real_folder_at_the_trainer_path_is_not_replaced(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "storage")
    old = layout.root / "models" / "micro-mtp"
    (old / "v1").mkdir(parents=True)
    with pytest.raises(TrainerPathError, match="micro-mtp exists and is not a link"):
        link_model(layout, "micro_mtp")
    assert (old / "v1").is_dir()
    outcome = trainer_path_of_model(layout, "micro_mtp")
    assert not outcome.passed and "not a symlink" in outcome.summary


def test_missing_and_dangling_links_fail_the_check(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "storage")
    assert "missing" in trainer_path_of_model(layout, "micro_mtp").summary
    link_model(layout, "micro_mtp")  # the artifact folder does not exist yet
    outcome = trainer_path_of_model(layout, "micro_mtp")
    assert not outcome.passed and "expected the folder" in outcome.summary


def test_the_reward_models_trainer_path_is_its_v2_folder(tmp_path: Path) -> None:
    """The trainer's ``storage/models/starling-rm-7b`` (its setup_models.py) is models_v2's."""
    layout = Layout(tmp_path / "storage")
    layout.model("starling_rm_7b").root.mkdir(parents=True)
    link = link_model(layout, "starling_rm_7b")
    assert link == layout.root / "models" / "starling-rm-7b"
    assert os.readlink(link) == "../models_v2/starling-rm-7b"
    assert trainer_path_of_model(layout, "starling-rm-7b").passed
