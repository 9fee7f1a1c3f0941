"""Atomic writes: a file or folder appears at its path whole, or the previous one stays.

Everything is written to a hidden sibling (same folder, so the final rename never crosses a file
system) and renamed over the target; a failure midway leaves the target as it was and no
temporary behind. The sibling's name ends in ``.tmp-<random>``, so no reader that lists the folder
by suffix (``*.parquet``) takes it for data.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def replace_path(
    target: str | os.PathLike, write: Callable[[Path], object], *, folder: bool = False
) -> Path:
    """Call ``write(temporary)``, then move what it wrote (a file, or a folder) over ``target``.

    Args:
        target: the file or folder to write; its parent folders are created.
        write: writes the whole content at the path it is given.
        folder: create the temporary as an empty folder before ``write`` fills it.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary, previous = _sibling(target, "tmp"), _sibling(target, "old")
    try:
        if folder:
            temporary.mkdir()
        write(temporary)
        # A rename replaces a file in one step but not a folder: the old one moves aside first.
        moved_aside = target.exists() and (target.is_dir() or temporary.is_dir())
        if moved_aside:
            os.replace(target, previous)
        try:
            os.replace(temporary, target)
        except OSError:
            if moved_aside:
                os.replace(previous, target)
            raise
    finally:
        _remove(temporary)
        _remove(previous)
    return target


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    return replace_path(target, lambda path: path.write_text(text, encoding="utf-8"))
