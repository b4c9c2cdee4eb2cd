"""Issue 5 end to end: ACT trained on a dataset the converter made from sim recordings through
ROS; the loss falls, the checkpoint reloads to identical outputs, and the policy runner serves
it in the simulated graph, its chunks played through the watchdog to the follower."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ros

from sensor_msgs.msg import JointState  # noqa: E402

from lerobot_msgs.msg import ActionChunk  # noqa: E402
from lerobot_ros.core.graph import PolicyGraphArgs, policy_graph  # noqa: E402
from lerobot_ros.core.policies.base import load_policy  # noqa: E402
from lerobot_ros.core.training.data import ChunkDataset, DatasetMeta  # noqa: E402
from lerobot_ros.core.training.train import TrainConfig, train  # noqa: E402
from lerobot_ros.nodes import qos  # noqa: E402
from lerobot_ros.testing.graph import GraphHarness  # noqa: E402

STEPS = 200
RATE_HZ = 4.0


@pytest.fixture(scope="module")
def trained(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("act_sim")
    cfg = TrainConfig(
        dataset=str(sim_dataset),
        output_dir=str(out),
        policy_config="act_small",
        overrides={"chunk_size": 20, "n_action_steps": 20},
        steps=STEPS,
        batch_size=8,
        checkpoint_every=100,
        log_every=5,
        progress=False,
    )
    return train(cfg, log=lambda _m: None)


def test_act_trains_on_the_converted_sim_dataset_and_reloads_identically(
    trained, sim_dataset: Path
) -> None:
    losses = [v for _, v in trained.losses]
    assert len(losses) == STEPS // 5
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    assert last < 0.5 * first, f"loss {first:.3f} -> {last:.3f} over {STEPS} steps"
    assert (trained.checkpoint.parents[2] / "loss.svg").is_file()

    reloaded = load_policy(trained.checkpoint)
    meta = DatasetMeta.load(sim_dataset)
    raw = ChunkDataset(meta, horizon=1)  # raw units: what a robot would observe
    for i in (0, 50, len(raw) - 1):
        item = raw[i]
        image = (item["observation.images.front"].numpy() * 255).round().astype(np.uint8)
        obs = {
            "observation.state": item["observation.state"].numpy(),
            "observation.images.front": image.transpose(1, 2, 0),
        }
        expected = trained.policy.predict_chunk(obs)
        np.testing.assert_array_equal(reloaded.predict_chunk(obs), expected)
        assert expected.shape == (20, 6)


def test_the_runner_serves_the_trained_policy_in_the_sim_graph(trained, domain_id: int) -> None:
    specs = []
    for s in policy_graph(PolicyGraphArgs(policy=str(trained.checkpoint), mode="rate")):
        if s.executable == "camera":  # the dataset's camera size
            s = dataclasses.replace(s, parameters={**s.parameters, "width": 128, "height": 96})
        elif s.name == "policy_runner":
            s = dataclasses.replace(s, parameters={**s.parameters, "rate_hz": RATE_HZ})
        specs.append(s)
    with GraphHarness(specs, domain_id) as h:
        chunks = h.inbox(ActionChunk, "/policy/action_chunk", qos.COMMAND)
        forwarded = h.inbox(JointState, "/follower/command", qos.COMMAND)
        h.wait(lambda: len(chunks) >= 2, 30.0, "the first chunks")
        chunks.clear()
        forwarded.clear()
        window = 3.0
        time.sleep(window)
        got = chunks.messages()
        runner = h.nodes["policy_runner"].runner
        slots = window / max(1.0 / RATE_HZ, runner.stats.inference_time.mean)
        assert 0.7 * slots <= len(got) <= window * RATE_HZ + 1, (len(got), runner.stats)
        assert all(m.horizon == 20 and m.policy_id == str(trained.checkpoint) for m in got)
        # Played at the control rate through the watchdog (active source: chunk_player).
        assert len(forwarded) > 10 * window
