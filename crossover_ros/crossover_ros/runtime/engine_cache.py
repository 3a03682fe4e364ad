"""TensorRT engines cached on disk under a key of everything that makes an engine valid.

An engine is only valid for the ONNX file, TensorRT version, GPU model, precision and optimisation
profile it was built with; used elsewhere it fails to load or, worse, runs with other numerics.
So the key holds all of them: the file name carries the key's digest (a changed ONNX file, a
TensorRT upgrade or another GPU looks for another file), and a JSON sidecar holds the full key and
the engine's SHA-256, checked on every lookup (a renamed, copied-in or truncated engine is
rebuilt, never used). Both files are written to a temporary name and renamed (``os.replace``), the
engine first: an interrupted build leaves either nothing or an engine without its sidecar, which
is rebuilt. The builder is injected (:class:`EngineBuilder`), so this logic is tested without
TensorRT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from crossover_ros.errors import RuntimeBackendError
from crossover_ros.runtime.graph import GraphSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    graph: str
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: str  # JSON of input -> [min, opt, max] shapes

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class EngineBuilder(Protocol):
    """What the cache needs of a builder: where it runs, and serialised engines."""

    def platform(self) -> dict[str, str]:
        """``tensorrt_version``, ``gpu_name`` and ``compute_capability`` of this machine."""
        ...

    def build(self, onnx_path: Path, spec: GraphSpec, precision: str) -> bytes: ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), "wb") as stream:
            os.fchmod(stream.fileno(), 0o644)  # whatever the umask: writable by this user only
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_trusted(path: Path) -> None:
    """RuntimeBackendError unless ``path`` is owned by this user (or root) and not writable by
    group or others: a TensorRT engine is deserialised code, so whoever can write the cache
    can run code in the node."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    loose = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    foreign = info.st_uid not in (os.getuid(), 0)
    if loose or foreign:
        if loose:
            who = {stat.S_IWGRP: "its group", stat.S_IWOTH: "other users"}.get(
                loose, "its group and other users"
            )
            why = f"writable by {who}"
        else:
            why = f"owned by another user (uid {info.st_uid})"
        raise RuntimeBackendError(
            f"engine cache {path} is {why}: engines are code TensorRT runs, so the cache must be"
            f" trusted; 'chmod go-w {path}' (and own it), or set another engine folder"
        )


class EngineCache:
    """Engines for (ONNX file, spec, precision) on this machine: looked up, else built."""

    def __init__(self, folder: Path, builder: EngineBuilder) -> None:
        self.folder = Path(folder)
        self.builder = builder

    def key(self, onnx_path: Path, spec: GraphSpec, precision: str) -> EngineKey:
        platform = self.builder.platform()
        profile = {name: [list(s) for s in shapes] for name, shapes in spec.profile().items()}
        return EngineKey(
            graph=spec.name,
            onnx_sha256=file_sha256(onnx_path),
            tensorrt_version=platform["tensorrt_version"],
            gpu_name=platform["gpu_name"],
            compute_capability=platform["compute_capability"],
            precision=precision,
            profile=json.dumps(profile, sort_keys=True),
        )

    def path(self, key: EngineKey) -> Path:
        return self.folder / f"{key.graph}-{key.precision}-{key.digest()}.engine"

    def lookup(self, key: EngineKey) -> Path | None:
        """The cached engine for ``key``, or None (with the reason logged) if it is not valid.
        RuntimeBackendError if the cache folder or the files are writable by other users."""
        path = self.path(key)
        sidecar = path.with_suffix(".json")
        check_trusted(self.folder)
        if not path.is_file():
            return None
        check_trusted(path)
        check_trusted(sidecar)
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            log.warning("engine %s has no readable key file: rebuilding", path)
            return None
        if meta.get("key") != asdict(key):
            log.warning("engine %s was built for another setup: rebuilding", path)
            return None
        if meta.get("engine_sha256") != file_sha256(path):
            log.warning("engine %s does not match its recorded hash: rebuilding", path)
            return None
        return path

    def get(self, onnx_path: Path, spec: GraphSpec, precision: str) -> Path:
        """A valid engine file for this ONNX file, spec and precision; built if needed."""
        key = self.key(onnx_path, spec, precision)
        path = self.lookup(key)
        if path is not None:
            return path
        log.info(
            "building TensorRT %s engine for %s (once per GPU and model)", precision, spec.name
        )
        blob = self.builder.build(Path(onnx_path), spec, precision)
        path = self.path(key)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_trusted(self.folder)
        write_atomic(path, blob)
        meta = {"key": asdict(key), "engine_sha256": hashlib.sha256(blob).hexdigest()}
        write_atomic(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())
        return path
