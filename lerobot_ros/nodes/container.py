"""Several of our nodes in one process (manual composition), on one executor thread.

    ros2 run lerobot_ros container lerobot_ros.nodes.teleop:TeleopNode=teleop \\
        lerobot_ros.nodes.watchdog:WatchdogNode=watchdog --ros-args --params-file config/so101.yaml

Why: rclpy has no intra-process transport, and every DDS transfer between two Python processes
costs thread wake-ups (about 0.3-0.5 ms here). Composed, the teleop hands each command to the
watchdog by a direct call (`compose` in nodes/base.py), one transfer less on the path a human
feels. The price is isolation: a crash takes both nodes down (the follower then holds its last
target). Launch files compose only on request (`compose:=true`).

Each argument before `--ros-args` is `module:Class=node_name`, a node class of this package.
Parameter files apply per node name as usual; `-p` on the command line would apply to all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial

from lerobot_ros.core.params import ParameterError
from lerobot_ros.nodes.base import LeRobotNode, run_nodes

PACKAGE_PREFIX = "lerobot_ros."


def parse_node(arg: str) -> tuple[str, str]:
    """'module:Class=name' -> ('module:Class', 'name'); ParameterError naming the argument."""
    path, sep, name = arg.partition("=")
    module, colon, cls = path.partition(":")
    if not (sep and colon and name and cls and module.startswith(PACKAGE_PREFIX)):
        raise ParameterError("node", arg, f"expected {PACKAGE_PREFIX}<module>:<Class>=<node name>")
    return path, name


def factories(argv: Sequence[str]) -> list[Callable[[], LeRobotNode]]:
    from lerobot_ros.runner import load_class

    out: list[Callable[[], LeRobotNode]] = []
    names: set[str] = set()
    for arg in argv:
        path, name = parse_node(arg)
        if name in names:
            raise ParameterError("node", arg, f"node name '{name}' is given twice")
        names.add(name)
        try:
            cls = load_class(path)
        except (ImportError, AttributeError) as exc:
            raise ParameterError("node", arg, f"cannot load {path}: {exc}") from exc
        out.append(partial(cls, node_name=name))
    if not out:
        raise ParameterError("node", "", "give at least one module:Class=name")
    return out


def main(args: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if args is None else args)
    ros_at = argv.index("--ros-args") if "--ros-args" in argv else len(argv)
    try:
        nodes = factories(argv[:ros_at])
    except ParameterError as exc:
        print(f"[lerobot_ros] {exc}", file=sys.stderr)
        return 2
    return run_nodes(nodes, [sys.argv[0], *argv[ros_at:]])


if __name__ == "__main__":
    sys.exit(main())
