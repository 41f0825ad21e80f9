"""Browsing a server-side folder that an operator allows (``NCVIZ_DATA_DIR``), and nothing else.

Every user-supplied path is taken relative to the allowed root, resolved with symlinks followed,
and refused unless the result is still inside the root: ``..``, absolute paths and links that
point outside all fail with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

from ncviz.errors import DataError

ENV_VAR = "NCVIZ_DATA_DIR"
LOGDIR_VAR = "NCVIZ_LOGDIR"  # the same folder under the name `ncviz serve LOGDIR` suggests


def allowed_root() -> Path | None:
    """The operator's folder (``NCVIZ_DATA_DIR``, or ``NCVIZ_LOGDIR`` as TensorBoard users name
    it), or None when server-side browsing is off."""
    value = os.environ.get(ENV_VAR) or os.environ.get(LOGDIR_VAR)
    if not value:
        return None
    root = Path(value).resolve()
    return root if root.is_dir() else None


def resolve_inside(root: Path, relative: str) -> Path:
    """``root / relative`` with symlinks resolved, refused if it leaves ``root``."""
    if not relative or relative in (".", "/"):
        return root.resolve()
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise DataError(f"path {relative!r} must be relative to the data folder, without '..'.")
    resolved = (root / candidate).resolve()
    base = root.resolve()
    if resolved != base and base not in resolved.parents:
        raise DataError(f"path {relative!r} leaves the data folder (through a link); refused.")
    if not resolved.exists():
        raise DataError(f"{relative!r} does not exist in the data folder.")
    return resolved


def list_entries(root: Path, relative: str = "") -> list[str]:
    """Entries of a folder inside ``root`` as relative paths (folders end with '/'); entries whose
    links point outside the root are left out."""
    folder = resolve_inside(root, relative)
    if not folder.is_dir():
        raise DataError(f"{relative!r} is not a folder.")
    base = root.resolve()
    entries = []
    for entry in sorted(folder.iterdir()):
        target = entry.resolve()
        if target != base and base not in target.parents:
            continue
        name = (Path(relative) / entry.name) if relative else Path(entry.name)
        entries.append(str(name) + ("/" if target.is_dir() else ""))
    return entries


def parent_of(relative: str) -> str:
    """The folder above ``relative`` ("" at the top): ``runs.v2/exp1`` → ``runs.v2``."""
    parent = Path(relative).parent
    return "" if str(parent) in (".", "") else str(parent)


def check_inside(root: Path, path: Path) -> None:
    """Refuse ``path`` — and, for a folder, every file in it — unless it resolves inside
    ``root``: a link in a run folder must not lead a reader outside the data folder."""
    base = root.resolve()
    entries = [path, *path.iterdir()] if path.is_dir() else [path]
    for entry in entries:
        target = entry.resolve()
        if target != base and base not in target.parents:
            raise DataError(
                f"{entry.name} in the data folder links outside it; refused (copy the file in "
                "instead of linking it)."
            )


def find_runs(root: Path, limit: int = 1000, max_depth: int = 8) -> list[str]:
    """Every run folder under ``root`` as a relative path, recursively (TensorBoard's
    ``--logdir``): a folder with a ``run.json`` (recorded runs, checkpoint runs that name their
    model and data); a run's own subfolders are not searched, links are not followed, at most
    ``limit`` runs ``max_depth`` folders deep.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     for run in ("sweep/lr0.1", "sweep/lr0.01", "baseline"):
    ...         (Path(folder) / run).mkdir(parents=True)
    ...         _ = (Path(folder) / run / "run.json").write_text("{}")
    ...     find_runs(Path(folder))
    ['baseline', 'sweep/lr0.01', 'sweep/lr0.1']
    """
    from ncviz.load.runs import RUN_FILE

    def is_run(folder: Path) -> bool:
        return (folder / RUN_FILE).is_file()

    base = root.resolve()
    if is_run(base):  # `ncviz serve runs/my-run`: the folder is itself the run
        return ["."]
    found: list[str] = []
    for folder, subfolders, _ in os.walk(base, followlinks=False):
        here = Path(folder)
        relative = here.relative_to(base)
        if is_run(here):
            found.append(relative.as_posix())
            subfolders.clear()  # a run's folders are its own (entries, caches)
        elif len(relative.parts) >= max_depth:
            subfolders.clear()
        subfolders.sort()
        if len(found) >= limit:
            break
    return sorted(found)
