"""Training, ROS-free: the data loader over LeRobotDataset v3.0 (`data`)."""
