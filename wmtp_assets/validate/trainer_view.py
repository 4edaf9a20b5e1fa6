"""Check that a trainer path (``files.trainer_view``) resolves to its artifact (no Dagster)."""

from __future__ import annotations

import os
from pathlib import Path

from wmtp_assets.files.layout import Layout
from wmtp_assets.files.trainer_view import model_link
from wmtp_assets.validate.outcome import CheckOutcome


def trainer_path_resolves(link: Path, target: Path) -> CheckOutcome:
    """The trainer's path is a relative symlink that resolves to the artifact folder itself."""
    if not link.is_symlink():
        what = "missing" if not link.exists() else "not a symlink"
        return CheckOutcome.fail(f"{link}: {what}; expected a link to {target}", link=str(link))
    pointer = os.readlink(link)
    if os.path.isabs(pointer):
        return CheckOutcome.fail(
            f"{link} -> {pointer}: absolute; expected a relative link (the root may move)",
            link=str(link),
            pointer=pointer,
        )
    resolved, expected = link.resolve(), target.resolve()
    if resolved != expected or not expected.is_dir():
        return CheckOutcome.fail(
            f"{link} -> {pointer} resolves to {resolved}, expected the folder {expected}",
            link=str(link),
            resolved=str(resolved),
            expected=str(expected),
        )
    return CheckOutcome.ok(f"{link.name} -> {pointer}", link=str(link), pointer=pointer)


def trainer_path_of_model(layout: Layout, model: str) -> CheckOutcome:
    """``<root>/models/<trainer name>`` (``micro-reference`` for micro-ref) is a relative link to
    the model's ``models_v2`` folder."""
    return trainer_path_resolves(*model_link(layout, model))
