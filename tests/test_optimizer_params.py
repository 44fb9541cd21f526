"""Checked parameters are checked again by the build driver: that must be a no-op."""

from __future__ import annotations

import pytest

from lmpc.compiler.check.optimizer_specs import OPTIMIZERS, validate_params

WRITTEN = {
    "mipro_v2": [{"auto": "light"}, {"auto": "none", "num_candidates": 3, "num_trials": 5}],
    "gepa": [{"auto": "light"}],
    "ensemble": [{"top": 3}],
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_validating_checked_parameters_again_changes_nothing(name: str) -> None:
    for written in WRITTEN.get(name, [{}]):
        checked, problems = validate_params(name, dict(written))
        assert problems == [], problems
        again, problems = validate_params(name, dict(checked))
        assert problems == [] and again == checked


def test_mipro_auto_still_rejects_an_explicit_candidate_count() -> None:
    _, problems = validate_params("mipro_v2", {"auto": "light", "num_candidates": 4})
    assert [p.kind for p in problems] == ["conflict"]
