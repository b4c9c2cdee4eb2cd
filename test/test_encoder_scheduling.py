"""The AV1 encoder must not leave the converter's threads real-time. SVT-AV1 (through PyAV)
switches the thread that opens it, and the threads it starts, to SCHED_FIFO 99 when the
process runs as root; the dataset writer undoes that. Each case runs in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BARE = r"""
import json, os, numpy as np, av
c = av.open(os.devnull, "w", format="mp4")
s = c.add_stream("libsvtav1", rate=30, options={"preset": "12"})
s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")):
    pass
pol = {os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")}
print(json.dumps(sorted(pol)))
"""

OURS = r"""
import json, os, sys, numpy as np
from pathlib import Path
from lerobot_ros.core.dataset.writer import _VideoFile
v = _VideoFile(Path(sys.argv[1]), 30, "av1", 64, 48)
for _ in range(3):
    v.encode(np.zeros((48, 64, 3), np.uint8))
pol = {os.sched_getscheduler(int(t)) for t in os.listdir("/proc/self/task")}
v.close()
print(json.dumps(sorted(pol)))
"""


def policies(code: str, *args: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_av1_encoding_leaves_every_thread_normal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if os.geteuid() != 0 or policies(BARE) == [os.SCHED_OTHER]:
        pytest.skip("here the encoder does not make itself real-time (not root, or fixed)")
    assert policies(OURS, str(tmp_path / "v.mp4")) == [os.SCHED_OTHER]
