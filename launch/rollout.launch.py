"""Roll out a policy on the SO-101 with one strategy: follower, cameras, watchdog (source
chunk_player), /policy_runner, /chunk_player and /rollout, plus /recorder for the recording
strategies and the leader arm + /teleop for DAgger.

    ros2 launch lerobot_ros rollout.launch.py strategy:=base policy:=<checkpoint dir or Hub id>
    ros2 launch lerobot_ros rollout.launch.py strategy:=sentry policy:=... output_dir:=~/bags
    ros2 launch lerobot_ros rollout.launch.py strategy:=highlight policy:=... highlight_s:=30
    ros2 service call /rollout/save_highlight lerobot_msgs/srv/SaveHighlight "{seconds: 10.0}"
    ros2 launch lerobot_ros rollout.launch.py strategy:=dagger policy:=... task:='pick it'
    ros2 service call /rollout/set_intervention lerobot_msgs/srv/SetIntervention \
        "{active: true, source: service}"       # take over; active: false gives it back
    ros2 service call /rollout/resume std_srvs/srv/Trigger   # after /watchdog/reset_estop

The nodes come from lerobot_ros.core.graph.rollout_graph, the same description that the tests
run in one process, so this file and the tested graph cannot drift apart.
"""

from launch import LaunchDescription
from lerobot_ros.core.graph import RolloutGraphArgs, rollout_graph
from lerobot_ros.launch_support import graph_launch_description

ARGUMENTS = {
    "strategy": ("base", "Rollout strategy: base | sentry | highlight | dagger."),
    "policy": ("", "Checkpoint directory or Hub repo id; empty = the parameter file's."),
    "inference": ("", "Policy runner mode: sync | rtc | rate; empty = the parameter file's."),
    "task": ("", "Task text for the policy and the recorded episodes; empty = the file's."),
    "output_dir": ("", "Where bags go; empty = the parameter file's recorder.output_dir."),
    "highlight_s": ("20.0", "strategy highlight: seconds kept in the recorder's ring buffer."),
    "device": ("", "Torch device of the policy (cpu, cuda, ...); empty = the file's."),
    "robot": ("so101", "Robot model: a name in the robot registry."),
    "sim": ("true", "true: MuJoCo arm, scripted leader and rendered cameras; false: hardware."),
    "cameras": ("front", "Comma-separated camera names, each a node /cameras/<name>."),
    "rviz": ("false", "Start RViz with config/<robot>.rviz."),
    "rqt": ("false", "Start rqt with config/so101.perspective (e-stop, save_highlight, plots)."),
    "compose": (
        "false",
        "true: the teleop runs in the watchdog's process (one DDS transfer less from leader to "
        "follower; a crash takes both down).",
    ),
    "params_file": ("", "Parameter YAML for every node; empty = config/<robot>.yaml."),
    "follower_port": ("", "Hardware: follower serial port; empty = the parameter file's."),
    "leader_port": ("", "Hardware (dagger): leader serial port; empty = the parameter file's."),
}


def generate_launch_description() -> LaunchDescription:
    return graph_launch_description(
        ARGUMENTS, lambda values: rollout_graph(RolloutGraphArgs.from_strings(values))
    )
