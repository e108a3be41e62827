"""Atomic output: write to a temporary sibling, rename into place on success.

A reader never sees a half-written output: the data go to a hidden
temporary path in the target's directory (``.name.tmp-<random>.ext``, the
target's extension kept so that writers choosing a format by extension,
such as matplotlib's ``savefig``, still work), which
:func:`os.replace` renames over the target only once the writing code has
finished. On any exception (``KeyboardInterrupt`` included) the temporary
file or directory is removed and the target is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError, OutputExistsError, VoxsegError

__all__ = ["atomic_path", "atomic_directory"]

# errno values that mean "this output cannot be written here", reported as OutputError
_OUTPUT_ERRNOS = {errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENOTDIR, errno.EFBIG}


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`, renamed over `path` on success.

    The caller creates a file *or* a directory at the yielded path. When the
    ``with`` block ends normally it is renamed to `path` with
    :func:`os.replace`; when the block raises (any exception, including
    ``KeyboardInterrupt``) it is removed and `path` is left untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final output path. A missing parent directory is created (and
        removed again if the write fails).
    overwrite : bool
        Replace an existing `path`. An existing directory is moved aside and
        deleted only after the new output is in place.

    Yields
    ------
    pathlib.Path
        ``<parent>/.<name>.tmp-<random><ext>`` (`ext`: the extension of
        `path`), which does not exist yet.

    Raises
    ------
    OutputExistsError
        If `path` exists and `overwrite` is false (checked before anything
        is written).
    OutputError
        If the output cannot be written (permission denied, disk full,
        read-only file system); the partial temporary output is removed.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> target = os.path.join(folder, "out", "table.csv")
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("label,volume\\n")
    >>> Path(target).read_text()
    'label,volume\\n'
    >>> os.listdir(os.path.join(folder, "out"))
    ['table.csv']
    >>> shutil.rmtree(folder)
    """
    with _atomic(path, overwrite=overwrite, make_directory=False) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_directory(path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a new, empty temporary directory that replaces `path` on success.

    Same contract as :func:`atomic_path`, for a whole results folder: the
    caller writes any number of files into the yielded directory, and
    readers see either the previous folder or the complete new one.

    Parameters
    ----------
    path : str or os.PathLike
        The final directory.
    overwrite : bool
        Replace an existing `path`; the old directory is deleted only after
        the new one is in place.

    Yields
    ------
    pathlib.Path
        An empty directory ``<parent>/.<name>.tmp-<random><ext>``.

    Raises
    ------
    OutputExistsError
        If `path` exists and `overwrite` is false.
    OutputError
        If the folder cannot be written; the partial folder is removed.

    Examples
    --------
    >>> import os, shutil, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> outdir = os.path.join(folder, "results")
    >>> with atomic_directory(outdir) as tmp:
    ...     _ = (tmp / "labels.txt").write_text("1 2 3")
    >>> os.listdir(outdir)
    ['labels.txt']
    >>> shutil.rmtree(folder)
    """
    with _atomic(path, overwrite=overwrite, make_directory=True) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic(path, *, overwrite: bool, make_directory: bool) -> Iterator[Path]:
    target = Path(path)
    if os.path.lexists(target) and not overwrite:
        raise OutputExistsError(f"{target}: already exists (use --overwrite to replace it)")
    created = _make_parents(target)
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(4)}{target.suffix}"
    try:
        if make_directory:
            tmp.mkdir()
        yield tmp
        if not os.path.lexists(tmp):
            raise OutputError(f"{target}: nothing was written")
        _commit(tmp, target)
    except BaseException as exc:
        _remove(tmp)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()  # only if still empty
        if _is_output_problem(exc):
            raise OutputError(f"{target}: cannot write output ({_reason(exc)})") from exc
        raise


def _make_parents(target: Path) -> list[Path]:
    """Create the missing parent directories of `target`; return them, outermost first."""
    missing = []
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    created = []
    for directory in reversed(missing):
        try:
            directory.mkdir()
        except OSError as exc:
            for done in reversed(created):
                with contextlib.suppress(OSError):
                    done.rmdir()
            raise OutputError(
                f"{target}: cannot create the output directory {directory} ({_reason(exc)})"
            ) from exc
        created.append(directory)
    return created


def _commit(tmp: Path, target: Path) -> None:
    """Move `tmp` to `target`; an existing directory is deleted only once `tmp` is in place."""
    if not os.path.lexists(target) or not (_is_dir(target) or _is_dir(tmp)):
        os.replace(tmp, target)  # file over file, or a new name: atomic
        return
    aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.replace(target, aside)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(aside, target)  # put the previous output back
        raise
    _remove(aside)


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def _remove(path: Path) -> None:
    """Delete a file, link or directory tree at `path` if there is one."""
    if _is_dir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path)


def _is_output_problem(exc: BaseException) -> bool:
    return (
        isinstance(exc, OSError)
        and not isinstance(exc, VoxsegError)
        and (isinstance(exc, PermissionError) or exc.errno in _OUTPUT_ERRNOS)
    )


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
