"""ROS bags -> LeRobotDataset v3.0, without ROS (rosbags, pyarrow, PyAV).

- `bag.read_episodes`: episodes of rosbag2 recordings (split by EpisodeEvent messages)
- `profile.DatasetProfile`: the ROS -> LeRobot unit and naming mapping (`so101_profile()`)
- `resample.resample`: fixed-rate grid resampling with per-stream policies and quality reports
- `writer.LeRobotDatasetWriter`: the v3.0 writer
- `convert.convert_bags`: all of the above; `cli.main`: the `lerobot_ros_convert` command
"""
