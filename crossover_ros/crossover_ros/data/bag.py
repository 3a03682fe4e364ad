"""Query bags: a robot's walk through a generated building, as a rosbag2 (MCAP or sqlite3).

Topics (defaults in :class:`BagTopics`, the ones the node and the evaluation expect):
colour ``sensor_msgs/Image`` rgb8, aligned depth ``sensor_msgs/Image`` 16UC1 (mm), their
``CameraInfo``, ``nav_msgs/Odometry`` of the camera optical frame in ``odom`` (the building frame),
and the ground truth as JSON in ``std_msgs/String`` per frame. The same ground truth is written to
``ground_truth.json`` inside the bag folder (rosbag2 readers ignore files they do not list).
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from crossover_ros.data.render import Renderer
from crossover_ros.data.scan import Building, load_building
from crossover_ros.data.trajectory import room_walk
from crossover_ros.errors import BagError
from crossover_ros.frames import CameraIntrinsics

GROUND_TRUTH_FILE = "ground_truth.json"
_TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_START_TIME_NS = 1_700_000_000 * 10**9  # fixed, so equal seeds give byte-identical bags


@dataclass(frozen=True)
class BagTopics:
    color: str = "/camera/color/image_raw"
    depth: str = "/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    odometry: str = "/odom"
    ground_truth: str = "/crossover/ground_truth"


@dataclass(frozen=True)
class QueryBagCfg:
    """What the recorded walk looks like; rates as a RealSense D435 at 15 fps would give."""

    seed: int = 0
    storage: str = "mcap"  # or "sqlite3"
    seconds_per_room: float = 6.0
    transit_seconds: float = 2.0  # corridor walk between rooms: odometry only, no images
    camera_rate_hz: float = 15.0
    odometry_rate_hz: float = 30.0
    rooms: tuple[str, ...] = ()  # room ids in visiting order; empty = every room once
    scans: str = "newest"  # walk through each room's newest rescan, or its "reference" scan
    topics: BagTopics = field(default_factory=BagTopics)
    color_frame: str = "camera_color_optical_frame"
    odom_frame: str = "odom"


def _header(stamp_ns: int, frame_id: str):
    msgs = _TYPESTORE.types
    stamp = msgs["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return msgs["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def _image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return _TYPESTORE.types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=data.size // height,
        data=data,
    )


def _camera_info_msg(intrinsics: CameraIntrinsics, stamp_ns: int, frame_id: str):
    k = intrinsics.matrix
    projection = np.hstack([k, np.zeros((3, 1))])
    types = _TYPESTORE.types
    return types["sensor_msgs/msg/CameraInfo"](
        header=_header(stamp_ns, frame_id),
        height=intrinsics.height,
        width=intrinsics.width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.reshape(-1),
        r=np.eye(3).reshape(-1),
        p=projection.reshape(-1),
        binning_x=0,
        binning_y=0,
        roi=types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        ),
    )


def _odometry_msg(pose: np.ndarray, stamp_ns: int, cfg: QueryBagCfg):
    from scipy.spatial.transform import Rotation

    types = _TYPESTORE.types
    qx, qy, qz, qw = Rotation.from_matrix(pose[:3, :3]).as_quat()
    position = types["geometry_msgs/msg/Point"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3])
    orientation = types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)
    covariance = np.diag([0.01, 0.01, 0.01, 0.005, 0.005, 0.005]).reshape(-1)
    zero = types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return types["nav_msgs/msg/Odometry"](
        header=_header(stamp_ns, cfg.odom_frame),
        child_frame_id=cfg.color_frame,
        pose=types["geometry_msgs/msg/PoseWithCovariance"](
            pose=types["geometry_msgs/msg/Pose"](position=position, orientation=orientation),
            covariance=covariance,
        ),
        twist=types["geometry_msgs/msg/TwistWithCovariance"](
            twist=types["geometry_msgs/msg/Twist"](linear=zero, angular=zero),
            covariance=np.zeros(36),
        ),
    )


def _visit_plan(building: Building, cfg: QueryBagCfg) -> list[tuple[str, str]]:
    """(walked scan, map scene) per visit: each room's newest rescan (or, for a mapping bag, its
    reference scan) and the reference scan a map stores for it."""
    if cfg.scans not in ("newest", "reference"):
        raise BagError(f"scans must be 'newest' or 'reference', not '{cfg.scans}'")
    by_room: dict[str, list] = {}
    for info in building.scans:
        by_room.setdefault(info.room_id, []).append(info)
    rooms = list(cfg.rooms) or sorted(by_room)
    plan = []
    for room in rooms:
        if room not in by_room:
            raise BagError(f"room '{room}' is not in building {building.building_id}")
        scans = sorted(by_room[room], key=lambda s: s.scan_index)
        walked = scans[0] if cfg.scans == "reference" else scans[-1]
        plan.append((walked.scan_id, scans[0].scan_id))
    return plan


def record_query_bag(
    building_dir: Path, out: Path, cfg: QueryBagCfg | None = None, progress: bool = True
) -> Path:
    """Render a walk through the building's rooms and write it as a rosbag2 folder ``out``."""
    cfg = cfg or QueryBagCfg()
    if cfg.storage not in ("mcap", "sqlite3"):
        raise BagError(f"storage must be 'mcap' or 'sqlite3', not '{cfg.storage}'")
    if out.exists():
        raise BagError(f"{out} already exists; rosbag2 writes a new folder")
    building = load_building(building_dir)
    plan = _visit_plan(building, cfg)
    rng = np.random.default_rng(cfg.seed)
    plugin = StoragePlugin.MCAP if cfg.storage == "mcap" else StoragePlugin.SQLITE3
    topics = cfg.topics
    odom_dt_ns = int(1e9 / cfg.odometry_rate_hz)
    frame_every = max(1, round(cfg.odometry_rate_hz / cfg.camera_rate_hz))
    visits = []
    serialize = _TYPESTORE.serialize_cdr
    with Writer(out, version=9, storage_plugin=plugin) as writer:
        conn = {
            "color": writer.add_connection(
                topics.color, "sensor_msgs/msg/Image", typestore=_TYPESTORE
            ),
            "depth": writer.add_connection(
                topics.depth, "sensor_msgs/msg/Image", typestore=_TYPESTORE
            ),
            "info": writer.add_connection(
                topics.camera_info, "sensor_msgs/msg/CameraInfo", typestore=_TYPESTORE
            ),
            "odom": writer.add_connection(
                topics.odometry, "nav_msgs/msg/Odometry", typestore=_TYPESTORE
            ),
            "truth": writer.add_connection(
                topics.ground_truth, "std_msgs/msg/String", typestore=_TYPESTORE
            ),
        }
        stamp_ns = _START_TIME_NS
        previous_end: np.ndarray | None = None
        for query_scan_id, scene_id in tqdm(plan, desc="recording rooms", disable=not progress):
            scan = building.scan(query_scan_id)
            reference_ids = {inst.id for inst in building.scan(scene_id).instances}
            renderer = Renderer.from_scan(scan)
            room_to_odom = building.room_pose(scan.room_id)
            num_poses = int(cfg.seconds_per_room * cfg.odometry_rate_hz)
            poses = room_walk(scan, num_poses, cfg.odometry_rate_hz, rng)
            world_poses = np.einsum("ij,njk->nik", room_to_odom, poses)
            if previous_end is not None:  # corridor transit: interpolate positions, odom only
                steps = int(cfg.transit_seconds * cfg.odometry_rate_hz)
                for k in range(1, steps + 1):
                    pose = world_poses[0].copy()
                    t = k / (steps + 1)
                    pose[:3, 3] = (1 - t) * previous_end[:3, 3] + t * world_poses[0][:3, 3]
                    writer.write(
                        conn["odom"],
                        stamp_ns,
                        serialize(_odometry_msg(pose, stamp_ns, cfg), "nav_msgs/msg/Odometry"),
                    )
                    stamp_ns += odom_dt_ns
            start_ns = stamp_ns
            for index, (room_pose, world_pose) in enumerate(zip(poses, world_poses, strict=True)):
                writer.write(
                    conn["odom"],
                    stamp_ns,
                    serialize(_odometry_msg(world_pose, stamp_ns, cfg), "nav_msgs/msg/Odometry"),
                )
                if index % frame_every == 0:
                    frame = renderer.render(room_pose, scan.intrinsics, rng)
                    depth_mm = np.nan_to_num(frame.depth * 1000.0, nan=0.0)
                    depth_mm = np.clip(np.round(depth_mm), 0, 65535).astype(np.uint16)
                    visible = sorted(int(i) for i in np.unique(frame.instance) if i != 0)
                    truth = {
                        "stamp_ns": stamp_ns,
                        "scene_id": scene_id,
                        "query_scan_id": query_scan_id,
                        "instances": {str(i): (i if i in reference_ids else None) for i in visible},
                    }
                    # camera_info first: a consumer can use the images that follow at once
                    for key, msg, msgtype in (
                        (
                            "info",
                            _camera_info_msg(scan.intrinsics, stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/CameraInfo",
                        ),
                        (
                            "color",
                            _image_msg(frame.color, "rgb8", stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/Image",
                        ),
                        (
                            "depth",
                            _image_msg(depth_mm, "16UC1", stamp_ns, cfg.color_frame),
                            "sensor_msgs/msg/Image",
                        ),
                        (
                            "truth",
                            _TYPESTORE.types["std_msgs/msg/String"](data=json.dumps(truth)),
                            "std_msgs/msg/String",
                        ),
                    ):
                        writer.write(conn[key], stamp_ns, serialize(msg, msgtype))
                stamp_ns += odom_dt_ns
            visits.append(
                {
                    "scene_id": scene_id,
                    "query_scan_id": query_scan_id,
                    "room_id": scan.room_id,
                    "start_ns": start_ns,
                    "end_ns": stamp_ns - odom_dt_ns,
                }
            )
            previous_end = world_poses[-1]
    sidecar = {
        "building_id": building.building_id,
        "config": asdict(cfg),
        "topics": asdict(topics),
        "visits": visits,
    }
    (out / GROUND_TRUTH_FILE).write_text(json.dumps(sidecar, indent=2))
    return out


def read_ground_truth(bag: Path) -> dict:
    """The sidecar written by :func:`record_query_bag`."""
    path = Path(bag) / GROUND_TRUTH_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise BagError(f"{bag} has no {GROUND_TRUTH_FILE}: not a crossover_ros query bag") from err
    except json.JSONDecodeError as err:
        raise BagError(f"{path} is not valid JSON: {err}") from err


@dataclass(frozen=True)
class RawMessage:
    topic: str
    msgtype: str
    timestamp_ns: int
    data: bytes


def bag_topics(bag: Path) -> dict[str, str]:
    """Topic -> message type of every connection in a bag."""
    try:
        with AnyReader([Path(bag)], default_typestore=_TYPESTORE) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as err:
        raise BagError(f"cannot read bag {bag}: {err}") from err


@dataclass
class BagReadStatus:
    """How far a lenient read got: pass one to :func:`iter_raw_messages` to read what is readable.

    ``error`` says why reading stopped early (truncated chunk, corrupt record, unreadable index);
    ``salvaged`` that the bag's index could not be opened and the storage file was scanned
    record by record instead (MCAP) or queried directly (sqlite3).
    """

    messages: int = 0
    error: str | None = None
    salvaged: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None


def iter_raw_messages(
    bag: Path, topics: list[str] | None = None, status: BagReadStatus | None = None
) -> Iterator[RawMessage]:
    """Serialized messages in time order, as stored (CDR), for replay without deserialising.

    Without ``status`` any read error raises :class:`BagError`. With ``status`` the iteration
    ends at the first unreadable part instead and ``status`` says where and why; a bag whose
    index cannot be opened (a recorder killed mid-write leaves an MCAP file without its summary,
    or no metadata.yaml) is salvaged from its storage file up to the damage.
    """
    if status is None:
        yield from _iter_strict(Path(bag), topics)
        return
    try:
        reader = AnyReader([Path(bag)], default_typestore=_TYPESTORE)
        reader.open()
    except Exception as err:  # the index is unreadable: scan the storage file itself
        yield from _salvage(Path(bag), topics, status, f"{err}")
        return
    try:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        for connection, timestamp, data in reader.messages(connections=connections):
            status.messages += 1
            yield RawMessage(connection.topic, connection.msgtype, timestamp, bytes(data))
    except Exception as err:  # a truncated chunk or corrupt page: keep what was read
        status.error = f"reading stopped after {status.messages} messages: {err}"
    finally:
        reader.close()


def _iter_strict(bag: Path, topics: list[str] | None) -> Iterator[RawMessage]:
    try:
        with AnyReader([bag], default_typestore=_TYPESTORE) as reader:
            connections = [c for c in reader.connections if topics is None or c.topic in topics]
            for connection, timestamp, data in reader.messages(connections=connections):
                yield RawMessage(connection.topic, connection.msgtype, timestamp, bytes(data))
    except BagError:
        raise
    except Exception as err:  # rosbags raises several reader errors; name the bag in one
        raise BagError(f"cannot read bag {bag}: {err}") from err


def _salvage(
    bag: Path, topics: list[str] | None, status: BagReadStatus, why: str
) -> Iterator[RawMessage]:
    files = [bag] if bag.is_file() else sorted(bag.glob("*.mcap")) + sorted(bag.glob("*.db3"))
    if not files:
        status.error = f"cannot read bag {bag}: {why}"
        return
    status.salvaged = True
    for path in files:
        scan = _scan_mcap if path.suffix == ".mcap" else _scan_sqlite3
        yield from scan(path, topics, status)
        if status.error:
            status.error = f"index unreadable ({why}); {status.error}"
            return


_MCAP_MAGIC = b"\x89MCAP0\r\n"


class _DamagedError(Exception):
    pass


def _mcap_string(buf: memoryview, pos: int) -> tuple[str, int]:
    size = int.from_bytes(buf[pos : pos + 4], "little")
    if pos + 4 + size > len(buf):
        raise _DamagedError("string runs past its record")
    return bytes(buf[pos + 4 : pos + 4 + size]).decode(), pos + 4 + size


def _mcap_records(buf: memoryview) -> Iterator[tuple[int, memoryview]]:
    pos = 0
    while pos < len(buf):
        if pos + 9 > len(buf):
            raise _DamagedError("record header cut off")
        opcode, size = buf[pos], int.from_bytes(buf[pos + 1 : pos + 9], "little")
        if pos + 9 + size > len(buf):
            raise _DamagedError(f"record (opcode {opcode:#04x}) of {size} bytes cut off")
        yield opcode, buf[pos + 9 : pos + 9 + size]
        pos += 9 + size


def _scan_mcap(path: Path, topics: list[str] | None, status: BagReadStatus) -> Iterator[RawMessage]:
    """An MCAP file record by record from its start, without its summary, up to the damage."""
    from rosbags.rosbag2.storage_mcap import decompress

    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}

    def messages(records: Iterator[tuple[int, memoryview]]) -> Iterator[RawMessage]:
        for opcode, body in records:
            if opcode == 0x03:  # schema: id, name, encoding, data
                schemas[int.from_bytes(body[:2], "little")] = _mcap_string(body, 2)[0]
            elif opcode == 0x04:  # channel: id, schema id, topic, message encoding, metadata
                schema_id = int.from_bytes(body[2:4], "little")
                topic, _ = _mcap_string(body, 4)
                channels[int.from_bytes(body[:2], "little")] = (topic, schemas.get(schema_id, ""))
            elif opcode == 0x05:  # message: channel id, sequence, log time, publish time, data
                channel = channels.get(int.from_bytes(body[:2], "little"))
                if channel and (topics is None or channel[0] in topics):
                    stamp = int.from_bytes(body[6:14], "little")
                    yield RawMessage(channel[0], channel[1], stamp, bytes(body[22:]))
            elif opcode == 0x06:  # chunk: times, sizes, crc, compression, records
                size = int.from_bytes(body[16:24], "little")
                crc = int.from_bytes(body[24:28], "little")
                compression, pos = _mcap_string(body, 28)
                length = int.from_bytes(body[pos : pos + 8], "little")
                data = decompress(body[pos + 8 : pos + 8 + length], compression, size, crc)
                inner = messages(_mcap_records(memoryview(data)))
                yield from sorted(inner, key=lambda m: m.timestamp_ns)
            elif opcode == 0x02:  # footer: the end, though the summary before it was unreadable
                return

    try:
        with path.open("rb") as handle:  # mapped, not read: bags can be larger than memory
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        magic = len(_MCAP_MAGIC)
        if data[:magic] != _MCAP_MAGIC:
            raise _DamagedError("not an MCAP file (bad magic)")
        for message in messages(_mcap_records(memoryview(data)[magic:])):
            status.messages += 1
            yield message
        if data[-magic:] != _MCAP_MAGIC:
            status.error = f"{path.name} ends without its footer: truncated"
    except Exception as err:
        status.error = f"{path.name} is damaged after {status.messages} messages: {err}"


def _scan_sqlite3(
    path: Path, topics: list[str] | None, status: BagReadStatus
) -> Iterator[RawMessage]:
    """A rosbag2 sqlite3 file queried directly, row by row, up to the first unreadable page."""
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT topics.name, topics.type, messages.timestamp, messages.data FROM messages"
                " JOIN topics ON messages.topic_id = topics.id ORDER BY messages.timestamp"
            )
            for topic, msgtype, stamp, blob in rows:
                if topics is None or topic in topics:
                    status.messages += 1
                    yield RawMessage(topic, msgtype, int(stamp), bytes(blob))
    except Exception as err:
        status.error = f"{path.name} is damaged after {status.messages} messages: {err}"


def deserialize(message: RawMessage):
    """A rosbags message object (numpy arrays for data fields) from a raw message."""
    return _TYPESTORE.deserialize_cdr(message.data, message.msgtype)
