"""Real arms on servo buses (Feetech, Dynamixel): hardware descriptions, the bus-backed
ArmBackend and the calibration procedure. ROS-free."""
