"""The scripted policy (POLICIES 'scripted'): a config.json-only checkpoint that load_policy
loads, chunks that start at the observed state and follow the goal no faster than max_speed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lerobot_ros.core.policies.base import CheckpointError, ChunkPolicy, load_policy
from lerobot_ros.core.policies.scripted import ScriptedPolicy, save_scripted_policy


def test_checkpoint_round_trip_through_load_policy(tmp_path: Path) -> None:
    directory = save_scripted_policy(tmp_path / "p", chunk_size=7, period_s=2.0, image_keys=[])
    policy = load_policy(directory)
    assert isinstance(policy, ScriptedPolicy) and isinstance(policy, ChunkPolicy)
    assert (policy.chunk_size, policy.period_s, policy.image_keys) == (7, 2.0, [])
    assert policy.policy_id == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["config.json"]


def test_chunk_starts_at_the_state_and_respects_max_speed() -> None:
    t = [100.0]
    policy = ScriptedPolicy(chunk_size=30, fps=30.0, period_s=1.0, clock=lambda: t[0])
    state = np.array([10.0, -5.0, 0.0, 3.0, 0.0, 40.0], dtype=np.float32)
    chunk = policy.predict_chunk({"observation.state": state})
    assert chunk.shape == (30, 6) and chunk.dtype == np.float32
    np.testing.assert_allclose(chunk[0], state)  # row 0 = where the arm is: no jump
    steps = np.abs(np.diff(chunk, axis=0))
    assert np.all(steps <= policy.max_speed / policy.fps + 1e-4)
    # The first call fixed the centre; from the centre the chunk follows the sine itself.
    t[0] = 100.25  # a quarter period: goal = centre + amplitude at row 0
    chunk = policy.predict_chunk({"observation.state": state})
    np.testing.assert_allclose(chunk[0], state)
    policy.reset()
    hold = ScriptedPolicy(motion="hold", clock=lambda: t[0])
    np.testing.assert_allclose(hold.predict_chunk({"observation.state": state}), [state] * 20)


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"motion": "zigzag"}, "motion 'zigzag' unknown"),
        ({"amplitude": [1.0, 2.0]}, "amplitude needs 6"),
        ({"max_speed": [0.0] * 6}, "max_speed must be > 0"),
        ({"typo": 1}, "unknown keys ['typo']"),
    ],
)
def test_bad_config_is_a_checkpoint_error(tmp_path: Path, config: dict, words: str) -> None:
    directory = save_scripted_policy(tmp_path)
    raw = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**raw, **config}))
    with pytest.raises(CheckpointError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_policy(directory)
