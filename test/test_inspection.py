"""RViz and rqt configs and the visualizer node.

RViz and rqt are not installable here, so their files are checked by parsing, against the
formats their loaders read (rviz_common's YAML config; qt_gui's perspective JSON, whose values
are Python reprs that qt_gui `eval`s), and every topic and service they name is checked against
a running graph: the union of the teleop graph (leader and ee_teleop variants, all sim cameras,
rviz and rqt on), the policy graph and the rollout node, started in-process, asked what it
publishes and serves, and with which types and QoS.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from lerobot_ros.core.graph import (
    NodeSpec,
    PolicyGraphArgs,
    TeleopGraphArgs,
    policy_graph,
    teleop_graph,
)
from lerobot_ros.core.robots import ROBOTS, get_robot

ROOT = Path(__file__).resolve().parents[1]
RVIZ_FILES = sorted({get_robot(name).rviz_config for name in ROBOTS.names()})
PERSPECTIVE = ROOT / get_robot("so101").rqt_perspective
SIM_CAMERAS = ("front", "wrist", "top")

# rviz_default_plugins displays used, and the message type each one subscribes to.
RVIZ_DISPLAY_TYPES = {
    "rviz_default_plugins/Grid": None,
    "rviz_default_plugins/TF": None,
    "rviz_default_plugins/RobotModel": "std_msgs/msg/String",
    "rviz_default_plugins/Pose": "geometry_msgs/msg/PoseStamped",
    "rviz_default_plugins/Image": "sensor_msgs/msg/Image",
    "rviz_default_plugins/Marker": "visualization_msgs/msg/Marker",
    "rviz_default_plugins/MarkerArray": "visualization_msgs/msg/MarkerArray",
}
QOS_VALUES = {
    "Reliability Policy": {"Reliable", "Best Effort", "System Default"},
    "Durability Policy": {"Volatile", "Transient Local", "System Default"},
    "History Policy": {"Keep Last", "Keep All", "System Default"},
}
# rqt plugins (plugin id = package/class name of their plugin.xml) and the settings each one
# restores (rqt_plot plot.py + data_plot, rqt_image_view image_view.cpp, rqt_service_caller
# service_caller_widget.py; rqt_robot_monitor keeps no settings we set).
RQT_PLUGIN_KEYS = {
    "rqt_robot_monitor/RobotMonitor": set(),
    "rqt_plot/Plot": {"autoscroll", "topics", "plot_type", "x_limits", "y_limits"},
    "rqt_image_view/ImageView": {"topic", "zoom1", "dynamic_range", "max_range", "rotate"},
    "rqt_service_caller/ServiceCaller": {"current_service_name", "splitter_orientation"},
}
# Topics of nodes that only exist in a ROS 2 install (launch starts them, the runner cannot),
# from their documentation; they count only when the graph has the node.
EXTERNAL_TOPICS = {
    "robot_state_publisher": {
        "/robot_description": ("std_msgs/msg/String", "Reliable", "Transient Local"),
        "/tf": ("tf2_msgs/msg/TFMessage", "Reliable", "Volatile"),
        "/tf_static": ("tf2_msgs/msg/TFMessage", "Reliable", "Transient Local"),
    }
}


# --- RViz ------------------------------------------------------------------------------------


def load_rviz(path: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / path).read_text())
    assert isinstance(data, dict), path
    return data


def rviz_topics(data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(display class, topic, the topic's QoS block) of every display that subscribes."""
    out = []
    for display in data["Visualization Manager"]["Displays"]:
        block = display.get("Topic") or display.get("Description Topic")
        if block is not None:
            out.append((display["Class"], block["Value"], block))
    return out


@pytest.mark.parametrize("path", RVIZ_FILES)
def test_rviz_config_structure(path: str) -> None:
    data = load_rviz(path)
    assert {p["Class"] for p in data["Panels"]} >= {"rviz_common/Displays", "rviz_common/Views"}
    manager = data["Visualization Manager"]
    assert manager["Class"] == "" and manager["Enabled"] is True
    # The fixed frame is the URDF's root, the frame of the poses and markers.
    assert manager["Global Options"]["Fixed Frame"] == "base_link"
    names = [d["Name"] for d in manager["Displays"]]
    assert len(names) == len(set(names)), "display names must be unique"
    for d in manager["Displays"]:
        assert d["Class"] in RVIZ_DISPLAY_TYPES, d["Class"]
        assert isinstance(d["Enabled"], bool) and d.get("Value", d["Enabled"]) == d["Enabled"]
    for cls, topic, block in rviz_topics(data):
        assert re.fullmatch(r"(/[A-Za-z_][A-Za-z0-9_]*)+", topic), (cls, topic)
        assert isinstance(block["Depth"], int) and block["Depth"] > 0
        for key, allowed in QOS_VALUES.items():
            assert block[key] in allowed, (topic, key, block[key])
    for tool in manager["Tools"]:
        assert tool["Class"].startswith("rviz_default_plugins/")
    assert manager["Views"]["Current"]["Class"] == "rviz_default_plugins/Orbit"
    by_class: dict[str, set[str]] = {}
    for cls, topic, _ in rviz_topics(data):
        by_class.setdefault(cls, set()).add(topic)
    assert by_class["rviz_default_plugins/RobotModel"] == {"/robot_description"}
    assert "rviz_default_plugins/TF" in {d["Class"] for d in manager["Displays"]}
    assert by_class["rviz_default_plugins/Pose"] >= {"/follower/ee_pose", "/leader/ee_pose"}
    assert "/policy/predicted_path" in by_class["rviz_default_plugins/MarkerArray"]
    assert by_class["rviz_default_plugins/Marker"] == {"/visualizer/watchdog_text"}
    assert {f"/cameras/{c}/image_raw" for c in SIM_CAMERAS} == by_class[
        "rviz_default_plugins/Image"
    ]


def test_rviz_configs_differ_only_in_the_view() -> None:
    configs = [load_rviz(p) for p in RVIZ_FILES]
    assert len(configs) == 2  # so101 (also so100) and koch
    for c in configs[1:]:
        assert (
            c["Visualization Manager"]["Displays"]
            == configs[0]["Visualization Manager"]["Displays"]
        )


# --- rqt ---------------------------------------------------------------------------------------


def load_perspective() -> dict[str, Any]:
    return json.loads(PERSPECTIVE.read_text())


def settings_value(entry: dict[str, Any]) -> Any:
    """What qt_gui's PerspectiveManager._import_value gives: eval(repr). Literals only here."""
    assert entry["type"] == "repr", entry
    return ast.literal_eval(entry["repr"])


def walk_settings(node: dict[str, Any], path: str = "") -> None:
    """Every group is {'keys': {...}, 'groups': {...}}, every key a typed repr."""
    assert set(node) == {"keys", "groups"}, path
    for key, entry in node["keys"].items():
        assert set(entry) == {"type", "repr"}, f"{path}/{key}"
        settings_value(entry)
    for name, group in node["groups"].items():
        walk_settings(group, f"{path}/{name}")


def running_plugins(data: dict[str, Any]) -> dict[str, list[int]]:
    return settings_value(data["groups"]["pluginmanager"]["keys"]["running-plugins"])


def plugin_settings(data: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """(plugin id, serial) -> the instance's plugin settings, for every running instance."""
    groups = data["groups"]["pluginmanager"]["groups"]
    out = {}
    for plugin_id, serials in running_plugins(data).items():
        for serial in serials:
            group = groups[f"plugin__{plugin_id.replace('/', '__')}__{serial}"]
            keys = group["groups"].get("plugin", {"keys": {}})["keys"]
            out[(plugin_id, serial)] = {k: settings_value(v) for k, v in keys.items()}
    return out


def test_perspective_structure() -> None:
    data = load_perspective()
    walk_settings(data)
    assert set(data["groups"]) == {"pluginmanager", "mainwindow"}
    running = running_plugins(data)
    assert set(running) == set(RQT_PLUGIN_KEYS)
    for plugin_id, serials in running.items():
        assert serials and all(isinstance(s, int) and s >= 1 for s in serials), plugin_id
        assert len(set(serials)) == len(serials)
    expected_groups = {
        f"plugin__{p.replace('/', '__')}__{s}" for p, serials in running.items() for s in serials
    }
    assert set(data["groups"]["pluginmanager"]["groups"]) == expected_groups
    for (plugin_id, serial), keys in plugin_settings(data).items():
        assert set(keys) <= RQT_PLUGIN_KEYS[plugin_id], (plugin_id, serial, keys)


def test_package_xml_depends_on_the_viewers_and_plugins() -> None:
    """rosdep installs what rviz:=true / rqt:=true / input:=keyboard start."""
    import xml.etree.ElementTree as ET

    deps = {e.text for e in ET.parse(ROOT / "package.xml").getroot().iter("exec_depend")}
    plugins = {plugin_id.split("/")[0] for plugin_id in running_plugins(load_perspective())}
    assert deps >= {"rviz2", "rqt_gui", "rqt_gui_py", "xterm", *plugins}


def perspective_references() -> tuple[dict[str, list[str]], dict[str, str], list[str]]:
    """({plotted topic: [field paths]}, {image topic: plugin}, [services])."""
    plots: dict[str, list[str]] = {}
    images: dict[str, str] = {}
    services: list[str] = []
    for (plugin_id, _), keys in plugin_settings(load_perspective()).items():
        if plugin_id == "rqt_plot/Plot":
            for spec in keys["topics"]:
                topic, field = plot_topic(spec)
                plots.setdefault(topic, []).append(field)
        elif plugin_id == "rqt_image_view/ImageView":
            images[keys["topic"]] = plugin_id
        elif plugin_id == "rqt_service_caller/ServiceCaller":
            services.append(keys["current_service_name"])
    return plots, images, services


# Topics whose fields the perspective plots (rqt_plot splits "<topic>/<field path>" at the
# longest prefix that is a topic; these are ours).
PLOTTED = ("/follower/joint_states", "/follower/ee_pose")


def plot_topic(spec: str) -> tuple[str, str]:
    for topic in PLOTTED:
        if spec.startswith(topic + "/"):
            return topic, spec[len(topic) + 1 :]
    raise AssertionError(f"rqt_plot topic {spec!r} is not one of {PLOTTED}")


def test_perspective_contents() -> None:
    plots, images, services = perspective_references()
    assert plots["/follower/joint_states"] == [f"position[{i}]" for i in range(6)]
    assert plots["/follower/ee_pose"] == [f"pose/position/{a}" for a in "xyz"]
    assert list(images) == ["/cameras/front/image_raw"]
    assert services == [
        "/watchdog/trigger_estop",
        "/watchdog/reset_estop",
        "/rollout/save_highlight",
    ]


def field_exists(msg_class: Any, path: str, n_joints: int) -> bool:
    """rqt_plot's field path ('a/b/c', 'name[3]') ends in a number on `msg_class`; an array
    element must be below `n_joints` (the arms publish 6 joints)."""
    value = msg_class()
    parts = path.split("/")
    for i, part in enumerate(parts):
        name, _, index = part.partition("[")
        if not hasattr(value, "get_fields_and_field_types"):
            return False
        if name not in value.get_fields_and_field_types():
            return False
        value = getattr(value, name)
        if index:
            return i == len(parts) - 1 and int(index.rstrip("]")) < n_joints
    return isinstance(value, int | float)


def get_message(msg_type: str) -> Any:
    """'pkg/msg/Name' -> the message class (rosidl_runtime_py's helper, not installed here)."""
    package, kind, name = msg_type.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


# --- the running graph -----------------------------------------------------------------------


def union_graph(tmp_path: Path, tty: str) -> list[NodeSpec]:
    """Every node whose topics the configs show, in one graph: the teleop graph with all sim
    cameras, rviz and rqt (so the visualizer), ee_teleop (its keyboard on `tty`), the policy
    runner (a scripted policy) and chunk player, and the rollout node (highlight strategy)."""
    from lerobot_ros.core.graph import RolloutGraphArgs, rollout_graph
    from lerobot_ros.core.policies.scripted import save_scripted_policy

    policy = save_scripted_policy(tmp_path / "policy")  # observes the front camera
    specs = teleop_graph(TeleopGraphArgs(cameras=SIM_CAMERAS, rviz=True, rqt=True))
    extra = teleop_graph(TeleopGraphArgs(input="keyboard", input_device=tty, cameras=()))
    extra += policy_graph(PolicyGraphArgs(policy=str(policy), cameras=("front",), mode="rate"))
    extra += rollout_graph(
        RolloutGraphArgs(
            strategy="highlight", policy=str(policy), cameras=(), output_dir=str(tmp_path)
        )
    )
    names = {s.fqn for s in specs}
    for s in extra:
        if s.fqn not in names and s.name in (
            "ee_teleop",
            "policy_runner",
            "chunk_player",
            "rollout",
        ):
            specs.append(s)
            names.add(s.fqn)
    # Cheap cameras: the test needs their publishers, not their pixels.
    cheap = {"fps": 2.0, "width": 64, "height": 48}
    return [
        replace(s, parameters={**s.parameters, **cheap}) if s.executable == "camera" else s
        for s in specs
    ]


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


RELIABILITY = {1: "Reliable", 2: "Best Effort"}  # rmw_qos_reliability_policy_t
DURABILITY = {1: "Transient Local", 2: "Volatile"}  # rmw_qos_durability_policy_t


@pytest.mark.ros
def test_every_config_topic_and_service_is_in_the_graph(
    domain_id: int, tmp_path: Path, pty: str
) -> None:
    from lerobot_ros.testing.graph import GraphHarness
    from lerobot_ros.testing.ros import wait_until

    specs = union_graph(tmp_path, pty)
    skipped = {s.package for s in specs if s.in_process is None}
    assert skipped == {"robot_state_publisher", "rviz2", "rqt_gui"}
    rqt = next(s for s in specs if s.package == "rqt_gui")
    assert ("/diagnostics_agg", "/diagnostics") in rqt.remappings  # robot monitor input
    external = {t: v for pkg in skipped for t, v in EXTERNAL_TOPICS.get(pkg, {}).items()}

    rviz = [t for path in RVIZ_FILES for t in rviz_topics(load_rviz(path))]
    plots, images, services = perspective_references()
    wanted = {topic for _, topic, _ in rviz} | set(plots) | set(images) | {"/diagnostics"}
    wanted -= set(external)

    with GraphHarness(specs, domain_id) as h:
        probe = h.probe
        assert probe is not None

        def publishers(topic: str) -> list[Any]:
            return probe.get_publishers_info_by_topic(topic)

        wait_until(lambda: all(publishers(t) for t in wanted), 30.0)
        missing = sorted(t for t in wanted if not publishers(t))
        assert not missing, (
            f"the configs show topics that no node of the graph publishes: {missing}"
        )
        served: dict[str, list[str]] = {}

        def all_served() -> bool:
            served.update(dict(probe.get_service_names_and_types()))
            return all(s in served for s in services)

        h.wait(all_served, 15.0, f"services {services}")
        info = {t: publishers(t) for t in wanted}

    def published(topic: str) -> list[tuple[str, str, str]]:
        """(type, reliability, durability) of each publisher of `topic`."""
        if topic in external:
            return [external[topic]]
        return [
            (
                p.topic_type,
                RELIABILITY[p.qos_profile.reliability],
                DURABILITY[p.qos_profile.durability],
            )
            for p in info[topic]
        ]

    for cls, topic, block in rviz:
        for msg_type, reliability, durability in published(topic):
            assert msg_type == RVIZ_DISPLAY_TYPES[cls], (cls, topic, msg_type)
            # RViz's subscription must be compatible with the publisher's offer.
            if block["Reliability Policy"] == "Reliable":
                assert reliability == "Reliable", (topic, "RViz asks reliable; best effort offered")
            if block["Durability Policy"] == "Transient Local":
                assert durability == "Transient Local", (topic, "RViz asks transient local")
    for topic, fields in plots.items():
        (msg_type, _, _), *_ = published(topic)
        for field in fields:
            assert field_exists(get_message(msg_type), field, 6), (topic, field, msg_type)
    for topic in images:
        assert {t for t, _, _ in published(topic)} == {"sensor_msgs/msg/Image"}
    assert {t for t, _, _ in published("/diagnostics")} == {"diagnostic_msgs/msg/DiagnosticArray"}
    assert served["/watchdog/trigger_estop"] == ["lerobot_msgs/srv/TriggerEstop"]
    assert served["/watchdog/reset_estop"] == ["lerobot_msgs/srv/ResetEstop"]
    assert served["/rollout/save_highlight"] == ["lerobot_msgs/srv/SaveHighlight"]


# --- the visualizer --------------------------------------------------------------------------


@pytest.mark.ros
def test_visualizer_publishes_forward_kinematics_and_the_watchdog_state(domain_id: int) -> None:
    """/follower/ee_pose and /leader/ee_pose are FK of the arm's joint state with the same
    stamp, in base_link; the watchdog text turns red on an e-stop."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import JointState
    from visualization_msgs.msg import Marker

    from lerobot_msgs.srv import TriggerEstop
    from lerobot_ros.core.kinematics import ForwardKinematics
    from lerobot_ros.core.robots import SO_ARM_JOINTS
    from lerobot_ros.nodes import qos
    from lerobot_ros.nodes.visualizer import rotation_to_quat
    from lerobot_ros.testing.graph import GraphHarness

    specs = [
        s
        for s in teleop_graph(TeleopGraphArgs(cameras=(), rviz=True))
        if s.name in ("follower", "leader", "watchdog", "visualizer")
    ]
    fk = ForwardKinematics(get_robot("so101").urdf_path())
    with GraphHarness(specs, domain_id) as h:
        states = {
            arm: h.inbox(JointState, f"/{arm}/joint_states", qos.SENSOR)
            for arm in ("follower", "leader")
        }
        poses = {arm: h.inbox(PoseStamped, f"/{arm}/ee_pose", qos.SENSOR) for arm in states}
        text = h.inbox(Marker, "/visualizer/watchdog_text", qos.LATCHED)
        h.wait(lambda: all(len(p) > 20 for p in poses.values()), 15.0, "end-effector poses")
        h.wait(lambda: len(text) > 0, 5.0, "watchdog text")
        assert text.last().text.startswith("forwarding 'teleop'") or "holding" in text.last().text
        h.call(TriggerEstop, "/watchdog/trigger_estop", TriggerEstop.Request(reason="test"))
        h.wait(lambda: text.last().text == "E-STOP: test", 5.0, "the e-stop text")
        assert (text.last().color.r, text.last().header.frame_id) == (1.0, "base_link")

    for arm in states:
        by_stamp = {(m.header.stamp.sec, m.header.stamp.nanosec): m for m in states[arm].messages()}
        matched = 0
        for pose in poses[arm].messages():
            assert pose.header.frame_id == "base_link"
            state = by_stamp.get((pose.header.stamp.sec, pose.header.stamp.nanosec))
            if state is None:  # best effort: that joint state did not reach the probe
                continue
            q = dict(zip(state.name, state.position, strict=True))
            expected = fk.pose({n: q[n] for n in SO_ARM_JOINTS})
            p, o = pose.pose.position, pose.pose.orientation
            np.testing.assert_allclose([p.x, p.y, p.z], expected[:3, 3], atol=1e-9)
            w, x, y, z = rotation_to_quat(expected[:3, :3])
            assert abs(abs(np.dot([o.w, o.x, o.y, o.z], [w, x, y, z])) - 1.0) < 1e-9
            matched += 1
        assert matched > 10, arm
    # Poses come at the visualizer's rate (30 Hz), not the arms' (100 Hz).
    assert len(poses["follower"]) < 0.5 * len(states["follower"])


def test_rotation_to_quat_round_trips() -> None:
    pytest.importorskip("rclpy")
    from lerobot_ros.core.urdf import rpy_to_matrix, rpy_to_quat
    from lerobot_ros.nodes.visualizer import rotation_to_quat

    rng = np.random.default_rng(0)
    for rpy in [*rng.uniform(-np.pi, np.pi, (50, 3)), (np.pi, 0, 0), (0, np.pi, 0), (0, 0, np.pi)]:
        q = np.array(rotation_to_quat(rpy_to_matrix(rpy)))
        assert abs(abs(q @ rpy_to_quat(rpy)) - 1.0) < 1e-9
