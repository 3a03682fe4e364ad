"""ROS 2 adapters: the only part of the package that imports rclpy or crossover_msgs."""
