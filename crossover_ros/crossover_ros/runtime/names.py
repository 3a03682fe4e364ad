"""The graph names: a module of its own so the CLI can list them without importing torch."""

from crossover_ros.model import modalities as mod

IMAGE = "image"  # EfficientNet-Lite0: GeM descriptor and [GeM | mean] per frame
FRAME_REGIONS = "frame_regions"  # the same at the frame size, plus per-cell region features
REGIONS = "regions"  # the region encoder: region features -> object embedding, objectness
FRAMES = "frames"  # the 2D frame-set encoder (also floorplans: a set of one)
SCENE_POINTS = "scene_points"  # the 3D scene point encoder
TEXT = "text"  # MiniLM from token ids
TEXT_SET = "text_set"  # the 1D referral-set encoder
INSTANCE = {m: f"instance_{m}" for m in mod.INSTANCE_MODALITIES}  # stage-1 projections
GRAPH_NAMES = (
    IMAGE,
    FRAME_REGIONS,
    FRAMES,
    SCENE_POINTS,
    *INSTANCE.values(),
    REGIONS,
    TEXT,
    TEXT_SET,
)
