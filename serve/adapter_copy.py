"""The managed copy of an adapter folder: no links followed, no pickle files, within the caps."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from serve.adapter_checks import PICKLE_SUFFIXES, AdapterLimits, check_entry
from serve.errors import AdapterRejected


def copy_folder(source: Path, target: Path, limits: AdapterLimits) -> None:
    """Copy an adapter folder without following any link, leaving out pickle-format files.

    Every folder and file is opened relative to its parent with O_NOFOLLOW, so a link swapped
    in after validation fails the copy instead of pulling in a file from elsewhere.
    """
    budget = {"files": limits.max_files, "bytes": limits.max_bytes}
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _copy_into(fd, source, target, budget)
    finally:
        os.close(fd)


def _copy_into(dir_fd: int, source: Path, target: Path, budget: dict[str, int]) -> None:
    target.mkdir(parents=True)
    with os.scandir(dir_fd) as listing:
        names = [entry.name for entry in listing]
    for name in names:
        budget["files"] -= 1
        if budget["files"] < 0:
            raise AdapterRejected(f"{source} grew past the file cap while it was copied")
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        check_entry(source / name, info)
        if stat.S_ISDIR(info.st_mode):
            sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                _copy_into(sub, source / name, target / name, budget)
            finally:
                os.close(sub)
        elif Path(name).suffix.lower() not in PICKLE_SUFFIXES:
            # O_NONBLOCK: a pipe swapped in after the check cannot stall the open
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
            with open(os.open(name, flags, dir_fd=dir_fd), "rb") as src:
                check_entry(source / name, os.fstat(src.fileno()))
                with open(target / name, "xb") as dst:
                    while block := src.read(1 << 20):
                        budget["bytes"] -= len(block)
                        if budget["bytes"] < 0:
                            msg = f"{source} grew past the size cap while it was copied"
                            raise AdapterRejected(msg)
                        dst.write(block)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
