"""The output directory of a run: checked before any work, replaced atomically, never anyone else's files.

Rules (README, "The output directory"):

- ``--out DIR`` may be a path that does not exist yet (its parent must), an empty directory, or a previous
  doseatlas output: a directory holding the marker file :data:`OUTPUT_MARKER` and nothing but the files that
  marker lists. Anything else (a file, a symbolic link, a directory with other files in it, the working
  directory or one of its parents, a directory holding an input of the run) is refused before any work with
  :class:`~doseatlas.errors.OutputDirectoryError`. No option makes doseatlas delete a file it did not write.
- The new output is written into a scratch directory beside ``DIR`` (``.DIR.partial-<pid>``, carrying the
  marker :data:`SCRATCH_MARKER` from its first instant), every file is fsynced, the output marker is written
  last, and the scratch directory then *exchanges* places with ``DIR`` in one atomic ``renameat2`` call
  (Linux); the old output, now at ``.DIR.old-<pid>``, is removed afterwards. At every instant ``DIR`` holds
  the complete old output or the complete new one.
- Where the exchange is not available (another OS or file system) two renames are used; a kill between them
  leaves ``DIR`` missing with ``.DIR.old-<pid>`` beside it, and the next run on ``DIR`` puts the old output
  back before it starts. Every run also removes the scratch and old directories of dead processes (only
  directories carrying one of the two markers, or empty ones).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from doseatlas._version import __version__
from doseatlas.errors import OutputDirectoryError

OUTPUT_MARKER = ".doseatlas-output.json"
SCRATCH_MARKER = ".doseatlas-partial"
_AUX = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?P<pid>\d+)$")


@dataclass(frozen=True)
class OutputTarget:
    """A checked output location: the final path and this run's scratch directory beside it."""

    final: Path
    scratch: Path

    @property
    def old(self) -> Path:
        """Where the previous output waits for removal after the exchange."""
        return self.final.with_name(f".{self.final.name}.old-{os.getpid()}")


# ------------------------------------------------------------------------------------------- checks
def check_output_location(out: str | Path, *, inputs: Iterable[str | Path] = ()) -> Path:
    """The absolute output path, or :class:`OutputDirectoryError` saying why ``out`` may not be used.

    Nothing is created, renamed or removed.
    """
    final = Path(os.path.abspath(out))
    shown = str(out)
    if Path(out).is_symlink():
        raise OutputDirectoryError(shown, "is a symbolic link; give the directory itself")
    cwd = Path.cwd().resolve()
    if final.resolve() == cwd or final.resolve() in cwd.parents:
        raise OutputDirectoryError(
            shown,
            "is the working directory or one of its parents; give a directory of its own (e.g. results)",
        )
    _check_parent(final.parent, shown)
    if final.exists():
        _check_existing(final, shown)
    for path in inputs:
        resolved = Path(path).resolve()
        if resolved == final.resolve() or final.resolve() in resolved.parents:
            raise OutputDirectoryError(shown, f"holds the input {path}; the run would replace it")
    return final


def _check_parent(parent: Path, shown: str) -> None:
    if not parent.is_dir():
        raise OutputDirectoryError(shown, f"its parent directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK) or _immutable(parent):
        raise OutputDirectoryError(shown, f"cannot write in its parent directory {parent}")


def _check_existing(final: Path, shown: str) -> None:
    if not final.is_dir():
        raise OutputDirectoryError(shown, "is a file, not a directory; doseatlas does not replace it")
    entries = sorted(p.name for p in final.iterdir())
    if entries:
        listed = _listed_files(final)
        if listed is None:
            raise OutputDirectoryError(
                shown,
                f"is not empty and is not a doseatlas output (no {OUTPUT_MARKER}); doseatlas replaces only its "
                "own outputs: choose another --out",
            )
        foreign = [name for name in entries if name not in listed]
        if foreign:
            raise OutputDirectoryError(
                shown,
                f"holds files doseatlas did not write ({_names(foreign)}); move them or choose another --out",
            )
    locked = [p.name for p in [final, *final.iterdir()] if _immutable(p)]
    if locked or not os.access(final, os.W_OK | os.X_OK):
        raise OutputDirectoryError(shown, f"cannot be replaced (immutable or read-only: {_names(locked)})")


def _listed_files(directory: Path) -> set[str] | None:
    """The files a doseatlas output marker lists (with the marker), or None where there is no valid marker."""
    marker = directory / OUTPUT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        document = json.loads(marker.read_text(encoding="utf-8"))
        files = document["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return {*files, OUTPUT_MARKER}


def _names(names: list[str], *, most: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


_FS_IOC_GETFLAGS = 0x80086601
_IMMUTABLE_OR_APPEND = 0x00000010 | 0x00000020


def _immutable(path: Path) -> bool:
    """True where the file system marks ``path`` immutable or append-only (Linux ``chattr +i``/``+a``)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        flags = fcntl.ioctl(fd, _FS_IOC_GETFLAGS, struct.pack("l", 0))
        return bool(struct.unpack("l", flags)[0] & _IMMUTABLE_OR_APPEND)
    except OSError:
        return False
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------- recovery of dead runs
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(directory: Path) -> bool:
    """A directory this package wrote: it carries one of the two markers, or it is empty."""
    if directory.is_symlink() or not directory.is_dir():
        return False
    return (
        (directory / SCRATCH_MARKER).is_file()
        or _listed_files(directory) is not None
        or not any(directory.iterdir())
    )


def recover(final: str | Path) -> list[str]:
    """Undo what killed runs on ``final`` left behind; returns what was done, in words.

    A missing ``final`` with an old output beside it (a kill between the two renames of the fallback) gets
    the old output back; scratch and old directories of dead processes that carry a doseatlas marker are
    removed. Directories of live processes and anything without a marker are left alone.
    """
    final = Path(os.path.abspath(final))
    done: list[str] = []
    if not final.parent.is_dir():
        return done
    stale = []
    for entry in sorted(final.parent.iterdir()):
        match = _AUX.match(entry.name)
        if match and match["name"] == final.name and not _alive(int(match["pid"])) and _ours(entry):
            stale.append((match["kind"], entry))
    if not final.exists() and not final.is_symlink():
        olds = [entry for kind, entry in stale if kind == "old" and _listed_files(entry) is not None]
        if olds:
            newest = max(olds, key=lambda p: p.stat().st_mtime)
            newest.rename(final)
            _fsync_directory(final.parent)
            done.append(f"restored the previous output of an interrupted run from {newest.name}")
            stale = [(kind, entry) for kind, entry in stale if entry != newest]
    for _kind, entry in stale:
        _remove(entry)
        done.append(f"removed {entry.name}, left by an interrupted run")
    return done


# -------------------------------------------------------------------------------------- the life cycle
def prepare_output(out: str | Path, *, inputs: Iterable[str | Path] = ()) -> tuple[OutputTarget, list[str]]:
    """Check ``out``, recover what dead runs left, and create this run's scratch directory beside it.

    Returns the target and the recovery notes. Raises :class:`OutputDirectoryError` before anything is
    created where ``out`` may not be used.
    """
    check_output_location(out, inputs=inputs)
    notes = recover(out)
    final = check_output_location(out, inputs=inputs)
    scratch = final.with_name(f".{final.name}.partial-{os.getpid()}")
    if scratch.exists() or scratch.is_symlink():
        raise OutputDirectoryError(str(out), f"{scratch} exists already (another run in this process?)")
    try:
        scratch.mkdir()
        (scratch / SCRATCH_MARKER).write_text(f"doseatlas {__version__} pid {os.getpid()}\n")
    except OSError as exc:
        shutil.rmtree(scratch, ignore_errors=True)
        raise OutputDirectoryError(str(out), f"cannot write beside it: {exc.strerror}") from None
    return OutputTarget(final=final, scratch=scratch), notes


def commit_output(target: OutputTarget) -> None:
    """Seal the scratch directory (fsync, output marker) and put it in place of the final path atomically."""
    scratch, final = target.scratch, target.final
    files = sorted(p.name for p in scratch.iterdir() if p.name != SCRATCH_MARKER)
    for name in files:
        _fsync_file(scratch / name)
    marker = {
        "doseatlas_output": 1,
        "package_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": files,
    }
    with open(scratch / OUTPUT_MARKER, "w", encoding="utf-8") as handle:
        json.dump(marker, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    (scratch / SCRATCH_MARKER).unlink()
    _fsync_directory(scratch)
    if final.exists():
        _check_existing(final, str(final))  # again: files may have been added since the run started
        _replace(scratch, final, old=target.old)
        _remove(target.old)
    else:
        scratch.rename(final)
    _fsync_directory(final.parent)


def abandon_output(target: OutputTarget) -> None:
    """Remove this run's scratch directory (the final path is untouched)."""
    _remove(target.scratch)


@contextlib.contextmanager
def output_directory(out: str | Path, *, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a scratch directory that replaces ``out`` atomically when the block succeeds.

    ``out`` is checked and prepared on entry, before the block does any work.
    """
    target, _notes = prepare_output(out, inputs=inputs)
    try:
        yield target.scratch
    except BaseException:
        abandon_output(target)
        raise
    commit_output(target)


# ------------------------------------------------------------------------------------------ single files
def check_new_file(path: str | Path) -> Path:
    """``path`` for a file this run creates: it must not exist (doseatlas overwrites no file) and its
    directory must; :class:`OutputDirectoryError` otherwise. Nothing is created."""
    path = Path(os.path.abspath(path))
    if path.exists() or path.is_symlink():
        raise OutputDirectoryError(
            str(path), "exists; doseatlas does not overwrite files: remove it or choose another path"
        )
    _check_parent(path.parent, str(path))
    return path


@contextlib.contextmanager
def new_file(path: str | Path) -> Iterator[Path]:
    """Yield a scratch path beside ``path``; when the block succeeds the file is fsynced and linked to
    ``path`` without ever replacing a file that appeared there meanwhile (the scratch is removed either way)."""
    path = check_new_file(path)
    scratch = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        yield scratch
        _fsync_file(scratch)
        try:
            os.link(scratch, path)
        except FileExistsError:
            raise OutputDirectoryError(
                str(path), "appeared while this run was writing it; left alone"
            ) from None
        _fsync_directory(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            scratch.unlink()


# ---------------------------------------------------------------------------------- file-system primitives
def _replace(scratch: Path, final: Path, *, old: Path) -> None:
    """Put ``scratch`` at ``final`` and the previous ``final`` at ``old``: one atomic exchange where the OS
    offers it, two renames otherwise (see :func:`recover`)."""
    if _exchange(scratch, final):
        scratch.rename(old)
        return
    final.rename(old)
    scratch.rename(final)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    status = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if status == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _remove(directory: Path) -> None:
    """Remove a directory of ours, its markers last, so that a kill half way leaves it recognisable."""
    if not directory.is_dir() or directory.is_symlink():
        return
    markers = (OUTPUT_MARKER, SCRATCH_MARKER)
    for entry in sorted(directory.iterdir(), key=lambda p: p.name in markers):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def _fsync_file(path: Path) -> None:
    if path.is_file() and not path.is_symlink():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
