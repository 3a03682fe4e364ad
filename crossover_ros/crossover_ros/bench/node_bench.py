"""``crossover_ros bench node``: what the scene_recognizer costs per keyframe, and end to end.

Part 1, node overhead without the encoder: VGA (640x480 by default) colour + 16UC1 depth
messages go through the node's own code: rclpy deserialisation of the two images (what a
subscription does), colour/depth pairing, conversion and checks, keyframe decision, and
back-projection + voxel fusion into the keyframe cloud. Every pair is a keyframe. Target:
p50 <= 5 ms on a CPU.

Part 2, end to end: the real node (encoder, map query, temporal filter, publishing) in this
process with its own executor thread, a camera publisher and a SceneMatch subscriber over DDS;
latency = colour/depth published -> SceneMatch with that stamp received, one keyframe at a time
(no drops), ``publish_rate_hz`` 0 (every window is published at once). The map holds
``--scenes`` scenes of synthetic images embedded with the same model. Not a test: numbers
depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from nav_msgs.msg import Odometry
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image

from crossover_msgs.msg import SceneMatch
from crossover_ros.argtypes import int_at_least
from crossover_ros.config import build
from crossover_ros.frames import CameraIntrinsics, RGBDFrame
from crossover_ros.mapdb import SceneRecord, SQLiteMapDatabase
from crossover_ros.model.registry import create_encoder
from crossover_ros.pipeline.config import PipelineCfg
from crossover_ros.pipeline.fusion import FusionCfg, PointCloudFusion
from crossover_ros.pipeline.keyframes import KeyframeCfg
from crossover_ros.pipeline.stream import SensorStream, StreamCfg
from crossover_ros.ros.convert import (
    depth_to_image,
    intrinsics_to_camera_info,
    pose_to_odometry,
    rgb_to_image,
)
from crossover_ros.ros.nodes.scene_recognizer import SceneRecognizerNode
from crossover_ros.ros.params import parameters_of

OVERHEAD_TARGET_MS = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("node", help="scene_recognizer per-keyframe overhead and latency")
    bench.add_argument("--width", type=int_at_least(1), default=640)
    bench.add_argument("--height", type=int_at_least(1), default=480)
    bench.add_argument(
        "--frames", type=int_at_least(1), default=200, help="pairs for the overhead part"
    )
    bench.add_argument(
        "--e2e-frames", type=int_at_least(0), default=20, help="keyframes end to end (0: skip)"
    )
    bench.add_argument("--model", default="global_descriptor", help="the node's model")
    bench.add_argument("--backend", default="torch", help="torch, onnxruntime, tensorrt, auto")
    bench.add_argument(
        "--scenes", type=int_at_least(1), default=20, help="scenes in the end-to-end map"
    )
    bench.add_argument("--num-threads", type=int_at_least(1), default=2, help="encoder CPU threads")
    bench.add_argument(
        "--fusion-stride",
        type=int,
        default=0,
        help="fusion.pixel_stride (0: the node's default, about 160 columns fused)",
    )
    bench.set_defaults(command=bench_node_command)


# -- synthetic sensor data ----------------------------------------------------------------------
def _frames(count: int, width: int, height: int, seed: int = 0):
    """Smooth random colour images, a slanted depth plane with holes, a camera moving 0.3 m."""

    rng = np.random.default_rng(seed)
    intrinsics = CameraIntrinsics.from_fov(width, height, 69.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = []
    for i in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        color = np.stack(
            [127 + 120 * np.sin(xs / (40 + 10 * c) + ys / 60 + phase[c]) for c in range(3)], -1
        ).astype(np.uint8)
        depth = (1.5 + 2.5 * ys / height + 0.2 * np.sin(xs / 50)).astype(np.float32)
        depth[rng.random((height, width)) < 0.05] = np.nan  # sensor holes
        pose = np.eye(4)
        pose[0, 3] = 0.3 * i
        out.append(RGBDFrame(color, depth, intrinsics, 100.0 + i / 15, pose))
    return out


def _messages(frames):

    frame_id = "camera_color_optical_frame"
    out = []
    for f in frames:
        out.append(
            (
                intrinsics_to_camera_info(f.intrinsics, f.stamp, frame_id),
                pose_to_odometry(f.camera_to_world, f.stamp, "odom", frame_id),
                rgb_to_image(f.color, f.stamp, frame_id),
                depth_to_image(f.depth, f.stamp, frame_id),
            )
        )
    return out


def _ms(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1e3
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


# -- part 1 -------------------------------------------------------------------------------------
def measure_overhead(frames, messages, fusion_stride: int = 0) -> dict[str, list[float]]:
    """Per-keyframe seconds of each step the node runs, without the encoder."""

    fusion = PointCloudFusion(FusionCfg(pixel_stride=fusion_stride))
    stream = SensorStream(None, StreamCfg(), keyframes=KeyframeCfg(max_interval_s=0.0))
    samples: dict[str, list[float]] = {
        k: [] for k in ("deserialise", "sync", "convert", "fusion", "total")
    }
    wire = [(serialize_message(c), serialize_message(d)) for _, _, c, d in messages]
    for (info, odom, _, _), (color_bytes, depth_bytes) in zip(messages, wire, strict=True):
        stream.on_camera_info(info)
        stream.on_odometry(odom)
        t0 = time.perf_counter()
        color = deserialize_message(color_bytes, Image)
        depth = deserialize_message(depth_bytes, Image)
        t1 = time.perf_counter()
        stream.sync_color(color)
        pair = stream.sync_depth(depth)
        t2 = time.perf_counter()
        keyframe = stream.process(*pair)
        t3 = time.perf_counter()
        fusion.add(keyframe.frame, keyframe.pose)
        t4 = time.perf_counter()
        for name, value in zip(samples, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            samples[name].append(value)
    return {name: values[5:] for name, values in samples.items()}  # first calls warm caches


# -- part 2 -------------------------------------------------------------------------------------
def _make_map(path: Path, args, frames) -> str:
    """A map of ``--scenes`` synthetic scenes embedded with the node's model; its fingerprint."""

    encoder = create_encoder(args.model, None, args.num_threads, backend=args.backend)
    images = [f.color for f in _frames(args.scenes, 320, 240, seed=1)]
    with SQLiteMapDatabase.create(
        path, encoder.fingerprint, encoder.dim, encoder.instance_dim
    ) as db:
        for i, image in enumerate(images):
            vector = encoder.frame_features([image])
            db.add_scene(SceneRecord(f"scene_{i:03d}", "bench", f"room_{i}"), {"rgb": vector})
    return getattr(encoder, "backend", args.backend)


def measure_end_to_end(args, frames, messages) -> tuple[list[float], list[float], str]:
    """(published -> SceneMatch received seconds, node recognition seconds, backend)."""

    with tempfile.TemporaryDirectory() as tmp:
        map_path = Path(tmp) / "bench.sqlite"
        backend = _make_map(map_path, args, frames)
        context = rclpy.context.Context()
        rclpy.init(context=context)
        try:
            settings = {
                "map.path": str(map_path),
                "model.name": args.model,
                "model.backend": args.backend,
                "model.num_threads": args.num_threads,
                "keyframes.max_interval_s": 0.01,
                "fusion.pixel_stride": args.fusion_stride,
            }
            params = parameters_of(build(PipelineCfg, settings))
            node = SceneRecognizerNode(
                context=context,
                parameter_overrides=[*params, Parameter("publish.rate_hz", value=0.0)],
            )
            if node.pipeline is None:
                raise RuntimeError("scene_recognizer did not configure (see its log)")
            source = rclpy.create_node("bench_camera", context=context)
            color_pub = source.create_publisher(Image, "/camera/color/image_raw", 10)
            depth_pub = source.create_publisher(
                Image, "/camera/aligned_depth_to_color/image_raw", 10
            )
            info_pub = source.create_publisher(CameraInfo, "/camera/color/camera_info", 10)
            odom_pub = source.create_publisher(Odometry, "/odom", 10)
            arrived: dict[int, float] = {}
            got = threading.Event()

            def on_match(msg: SceneMatch) -> None:
                arrived[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = (
                    time.perf_counter()
                )
                got.set()

            source.create_subscription(SceneMatch, "/scene_recognizer/scene_match", on_match, 10)
            executor = MultiThreadedExecutor(num_threads=2, context=context)
            executor.add_node(node)
            executor.add_node(source)
            spinner = threading.Thread(target=executor.spin, daemon=True)
            spinner.start()
            deadline = time.monotonic() + 30
            while (
                color_pub.get_subscription_count() == 0
                or source.count_publishers("/scene_recognizer/scene_match") == 0
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the node did not connect within 30 s")
                time.sleep(0.05)
            info_pub.publish(messages[0][0])
            time.sleep(0.2)
            latencies = []
            for index, (_, odom, color, depth) in enumerate(messages[: args.e2e_frames + 2]):
                odom_pub.publish(odom)  # before the images: the keyframe gets its pose
                time.sleep(0.05)
                got.clear()
                stamp = color.header.stamp.sec * 10**9 + color.header.stamp.nanosec
                sent = time.perf_counter()
                color_pub.publish(color)
                depth_pub.publish(depth)
                if not got.wait(30.0):
                    raise RuntimeError(f"no SceneMatch for keyframe {index} within 30 s")
                if index >= 2:  # the first ones warm the encoder
                    latencies.append(arrived[stamp] - sent)
            recognition = node.pipeline.stats.recognition.values()[2:]
            executor.shutdown()
            spinner.join(timeout=10)
            node.destroy_node()
            source.destroy_node()
        finally:
            rclpy.try_shutdown(context=context)
    return latencies, recognition, backend


def bench_node_command(args: argparse.Namespace) -> int:
    frames = _frames(max(args.frames, args.e2e_frames + 2), args.width, args.height)
    messages = _messages(frames)
    print(f"scene_recognizer per keyframe, {args.width}x{args.height} rgb8 + 16UC1")
    print(f"{'step':52} {'p50 ms':>8} {'p95 ms':>8}")
    overhead = measure_overhead(frames[: args.frames], messages[: args.frames], args.fusion_stride)
    labels = {
        "deserialise": "rclpy deserialise colour + depth",
        "sync": "colour/depth pairing",
        "convert": "conversion, checks, keyframe decision",
        "fusion": f"back-projection + voxel fusion (stride {args.fusion_stride})",
        "total": "node overhead (all of the above)",
    }
    for name, label in labels.items():
        p50, p95 = _ms(overhead[name])
        print(f"{label:52} {p50:8.2f} {p95:8.2f}")
    p50, _ = _ms(overhead["total"])
    verdict = "met" if p50 <= OVERHEAD_TARGET_MS else "MISSED"
    print(f"target: overhead p50 <= {OVERHEAD_TARGET_MS:.0f} ms: {verdict}")
    if args.e2e_frames > 0:
        latencies, recognition, backend = measure_end_to_end(args, frames, messages)
        p50, p95 = _ms(recognition)
        print(f"{f'recognition in the node ({args.model}, {backend})':52} {p50:8.2f} {p95:8.2f}")
        p50, p95 = _ms(latencies)
        print(f"{'end to end: keyframe published -> SceneMatch':52} {p50:8.2f} {p95:8.2f}")
        print(
            f"end to end: {len(latencies)} keyframes one at a time over DDS, map of"
            f" {args.scenes} scenes, {args.num_threads} encoder threads"
        )
    return 0
