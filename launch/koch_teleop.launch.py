"""Koch v1.1 teleoperation: so101_teleop.launch.py with robot:=koch (Dynamixel buses).

    ros2 launch lerobot_ros koch_teleop.launch.py                 # simulated Koch
    ros2 launch lerobot_ros koch_teleop.launch.py sim:=false follower_port:=/dev/ttyUSB0 \\
        leader_port:=/dev/ttyUSB1
    ros2 launch lerobot_ros koch_teleop.launch.py input:=gamepad rviz:=true   # config/koch.rviz
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration

from launch import LaunchDescription

ARGUMENTS = (
    "sim",
    "cameras",
    "rviz",
    "params_file",
    "follower_port",
    "leader_port",
    "input",
    "input_device",
    "rqt",
    "compose",
)


def generate_launch_description() -> LaunchDescription:
    teleop = Path(__file__).with_name("so101_teleop.launch.py")
    forwarded = {name: LaunchConfiguration(name) for name in ARGUMENTS}
    defaults = {
        "sim": "true",
        "cameras": "front",
        "rviz": "false",
        "params_file": "",
        "input": "leader",
        "rqt": "false",
        "compose": "false",
    }
    return LaunchDescription(
        [
            *(
                DeclareLaunchArgument(name, default_value=defaults.get(name, ""))
                for name in ARGUMENTS
            ),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(str(teleop)),
                launch_arguments={"robot": "koch", **forwarded}.items(),
            ),
        ]
    )
