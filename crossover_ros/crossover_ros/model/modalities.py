"""Modality names, the keys of every embedding dict, map database column and message field."""

RGB = "rgb"  # image crops (instance level), RGB frames (scene level)
POINT_CLOUD = "point_cloud"
MESH = "mesh"  # points sampled on an object's CAD/mesh surface
REFERRAL = "referral"  # text
FLOORPLAN = "floorplan"
SCENE = "scene"  # the fused scene vector F_S of stage 2

INSTANCE_MODALITIES = (RGB, POINT_CLOUD, MESH, REFERRAL)
UNIFIED_MODALITIES = (RGB, POINT_CLOUD, FLOORPLAN, REFERRAL)
