"""Reading rosbag2 folders (MCAP or sqlite3) with ``rosbags``: raw messages in time order.

A damaged bag (a recorder killed mid-write, a truncated copy) is read as far as it goes; what
stopped the read is reported in a :class:`BagReadStatus` rather than raised. The topics the
project's nodes and evaluations expect are :class:`BagTopics`; the ground truth of a query bag is
the JSON sidecar ``ground_truth.json`` inside the bag folder (rosbag2 readers ignore files they do
not list; it also records where the bag's odometry frame starts in the map and how its odometry
drifts) and the true camera pose on its own topic.
"""

from __future__ import annotations

import json
import mmap
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.highlevel import AnyReader
from rosbags.rosbag2.storage_mcap import decompress
from rosbags.typesys import Stores, get_typestore

from crossover_ros.errors import BagError

GROUND_TRUTH_FILE = "ground_truth.json"
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


@dataclass(frozen=True)
class BagTopics:
    color: str = "/camera/color/image_raw"
    depth: str = "/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    odometry: str = "/odom"
    ground_truth: str = "/crossover/ground_truth"
    # the camera's true pose in the map frame (geometry_msgs/PoseStamped at every odometry
    # stamp), like a motion-capture or survey pose: what poses are scored against
    ground_truth_pose: str = "/crossover/ground_truth_pose"


def read_ground_truth(bag: Path) -> dict:
    """The sidecar written beside a query bag."""
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
        with AnyReader([Path(bag)], default_typestore=TYPESTORE) as reader:
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
        reader = AnyReader([Path(bag)], default_typestore=TYPESTORE)
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
        with AnyReader([bag], default_typestore=TYPESTORE) as reader:
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
        status.error = why  # the caller names the bag
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
    return TYPESTORE.deserialize_cdr(message.data, message.msgtype)
