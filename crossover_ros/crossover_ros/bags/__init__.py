"""rosbag2 I/O: lenient reading of MCAP and sqlite3 bags, and the message builders for writing."""
