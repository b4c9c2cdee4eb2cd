"""The per-frame `intervention` flag: which frames a human drove (DAgger corrections).

The rollout node publishes INTERVENTION_START / INTERVENTION_END (lerobot_msgs/EpisodeEvent) on
/rollout/events, stamped when the takeover took effect; the recorder records that topic like any
other, and `bag.read_episodes` hands every EpisodeEvent of an episode to the converter. Frame k
(time t_k on the episode's fps grid, the header-stamp time base of every stream) is flagged when
t_k lies in [start, end) of an intervention.

The events of all topics are read as one state machine in stamp order: START opens an
intervention (a second START while open changes nothing), END closes it. An episode that ends
with an intervention open is flagged to its end. One that began during an intervention has its
START stamped before EPISODE_START (our recorder carries it into the bag; bag.read_episodes
carries it across episodes of one bag): flagged from the first frame. Without it (a bag from
elsewhere), an END before any START means the same.

Dtype: `{"dtype": "bool", "shape": [1], "names": None}`. Upstream LeRobot 0.4.4 writes per-frame
flags this way itself (`next.done` in lerobot/rl/gym_manipulator.py and rl/buffer.py), its
`validate_feature_numpy_array` accepts a numpy bool (1,) array, the HF feature is
`Value("bool")` (a parquet boolean column), the loader returns it as a torch.bool tensor, and
`dataset_to_policy_features` leaves it out of policies (not observation.* or action), so no
normalizer ever sees it. Stats follow upstream's shapes: min/max stay bool (JSON false/true,
as upstream's compute_episode_stats leaves them), mean (= the fraction of flagged frames), std
and the quantiles are float64, computed exactly as for every other feature of this writer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from lerobot_ros.core.dataset.bag import INTERVENTION_END, INTERVENTION_START, Event

FEATURE = "intervention"
SPEC = {"dtype": "bool", "shape": [1], "names": None}
MODES = ("auto", "on", "off")

_NEG_INF = np.iinfo(np.int64).min
_POS_INF = np.iinfo(np.int64).max


def has_interventions(events: Iterable[Event]) -> bool:
    return any(e.type in (INTERVENTION_START, INTERVENTION_END) for e in events)


def intervention_intervals(events: Iterable[Event]) -> list[tuple[int, int]]:
    """[start, end) intervals in ns (int64 min / max for an open side), in time order."""
    marks = sorted(
        (e for e in events if e.type in (INTERVENTION_START, INTERVENTION_END)),
        key=lambda e: e.stamp_ns,  # stable: events with equal stamps keep their bag order
    )
    intervals: list[tuple[int, int]] = []
    opened: int | None = None
    for e in marks:
        if e.type == INTERVENTION_START:
            if opened is None:
                opened = e.stamp_ns
        elif opened is not None:
            intervals.append((opened, e.stamp_ns))
            opened = None
        elif not intervals:  # END first: it was on before the episode's own events began
            intervals.append((_NEG_INF, e.stamp_ns))
    if opened is not None:
        intervals.append((opened, _POS_INF))
    return intervals


def intervention_mask(events: Iterable[Event], grid_ns: np.ndarray) -> np.ndarray:
    """(N,) bool: frame time grid_ns[k] within [start, end) of an intervention."""
    grid = np.asarray(grid_ns, dtype=np.int64)
    mask = np.zeros(grid.shape, dtype=bool)
    for start, end in intervention_intervals(events):
        mask |= (grid >= start) & (grid < end)
    return mask
