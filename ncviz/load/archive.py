"""Zip archives from untrusted users: checked before anything is unpacked.

An archive is refused with one line when an entry has an absolute path, ``..`` or is a symbolic
link, when it has too many entries, or when it would expand beyond a budget or with a compression
ratio no real file has (a zip bomb). Only entries with the expected suffixes are kept.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

from ncviz.errors import DataError

MAX_ZIP_UNCOMPRESSED = 2 << 30  # 2 GiB of decoded entries at most
MAX_ZIP_ENTRIES = 200_000
MAX_ZIP_RATIO = 200  # a larger compression ratio on any entry is treated as a zip bomb
RUN_SUFFIXES = (".json", ".safetensors", ".npz")


def open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise DataError(f"{path.name} is not a readable zip archive.") from None


def safe_members(
    archive: zipfile.ZipFile,
    name: str,
    suffixes: tuple[str, ...],
    max_total: int = MAX_ZIP_UNCOMPRESSED,
) -> list[zipfile.ZipInfo]:
    """The archive's files with one of ``suffixes``, after every check of the module docstring."""
    entries = [i for i in archive.infolist() if not i.is_dir()]
    unsafe = [
        i.filename
        for i in entries
        if i.filename.startswith(("/", "\\"))
        or ".." in Path(i.filename).parts
        or stat.S_ISLNK(i.external_attr >> 16)
    ]
    if unsafe:
        raise DataError(
            f"{name} has entries with '..' or absolute paths, or links ({unsafe[0]!r}); refused — "
            "re-create the archive from inside the folder, without links."
        )
    if len(entries) > MAX_ZIP_ENTRIES:
        raise DataError(f"{name} has {len(entries)} entries; the limit is {MAX_ZIP_ENTRIES}.")
    kept = [i for i in entries if Path(i.filename).suffix.lower() in suffixes]
    total = sum(i.file_size for i in kept)
    bomb = [i for i in kept if i.compress_size and i.file_size / i.compress_size > MAX_ZIP_RATIO]
    if total > max_total or bomb:
        raise DataError(
            f"{name} would expand to {total / 2**20:.0f} MiB "
            f"{'with suspicious compression ratios ' if bomb else ''}— refused as a possible "
            f"zip bomb (limit {max_total / 2**20:.0f} MiB); upload a smaller archive."
        )
    return kept


def unpack_run_zip(path: Path, dest: Path, max_total: int = MAX_ZIP_UNCOMPRESSED) -> Path:
    """Unpack a zipped run folder (a recorded run, or features files) into ``dest``; returns the
    folder that holds ``run.json`` or the files (one wrapping top folder is allowed)."""
    with open_zip(path) as archive:
        members = safe_members(archive, path.name, RUN_SUFFIXES, max_total)
        if not members:
            raise DataError(
                f"{path.name} holds no run.json, .safetensors or .npz files; zip the folder the "
                "Recorder wrote (or a folder of features files)."
            )
        folders = {Path(i.filename).parent for i in members}
        if len(folders) != 1:
            raise DataError(f"{path.name} has files in {len(folders)} folders; zip one run folder.")
        dest.mkdir(parents=True, exist_ok=True)
        for info in members:
            target = dest / Path(info.filename).name
            with archive.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, length=1 << 20)
    return dest
