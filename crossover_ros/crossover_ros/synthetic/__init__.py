"""Generated buildings for training and testing: rooms, look-alikes, rescans, RGB-D frames, meshes,
referrals, floorplans and query bags. Plain numpy + trimesh + embreex, no ROS."""
