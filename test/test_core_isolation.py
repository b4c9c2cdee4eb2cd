"""The core must stay importable and testable without ROS: no rclpy, no message packages."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = r"""
import importlib, json, pkgutil, sys
import lerobot_ros.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "lerobot_ros.core.")]
for name in names:
    importlib.import_module(name)
ros = sorted(m for m in sys.modules
             if m.split(".")[0] in {"rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs",
                                    "lerobot_msgs", "builtin_interfaces", "diagnostic_msgs"})
print(json.dumps({"modules": names, "ros": ros}))
"""


def test_core_imports_no_ros() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert "lerobot_ros.core.safety" in result["modules"]
    assert "lerobot_ros.core.sim.arm" in result["modules"]  # the walk really covers sub-packages
    assert result["ros"] == [], f"ROS modules imported by the core: {result['ros']}"
