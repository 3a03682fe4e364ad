"""Writing output folders and files: never over something that exists, never half-written.

Everything a verb writes goes to a hidden staging folder beside the target and is renamed onto
it only when complete, so a failure or an interrupt leaves the target as it was. An existing
non-empty target is refused unless the caller passes ``overwrite`` (``--overwrite``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crossover_ros.errors import DataError


def check_new_output(target: Path, overwrite: bool = False) -> None:
    """DataError if ``target`` is a file or a non-empty folder and ``overwrite`` is false."""
    target = Path(target)
    if overwrite or not (target.exists() or target.is_symlink()):
        return
    if target.is_dir() and not any(target.iterdir()):
        return
    kind = "folder" if target.is_dir() else "file"
    raise DataError(
        f"{target} already exists ({kind}, not empty); choose a new path or pass --overwrite"
    )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def staged_output(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """A path to write ``target``'s content to (not created: a folder or a file); renamed onto
    ``target`` when the block ends without an error, deleted when it raises."""
    target = Path(target)
    check_new_output(target, overwrite)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove(staging)
        staging.mkdir()
    except OSError as err:
        raise DataError(f"cannot write {target}: {err.strerror or err}") from err
    try:
        yield staging / target.name
        check_new_output(target, overwrite)  # something may have appeared meanwhile
        if target.exists() or target.is_symlink():
            old = staging / ".replaced"
            target.rename(old)
        (staging / target.name).rename(target)
    finally:
        _remove(staging)
