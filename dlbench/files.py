"""Files from outside, read bounded; files we write, written whole. Standard library only (workers use it).

Every file the program reads may be anything a user's disk holds: a FIFO (reading it blocks forever), a
device (/dev/zero never ends), a folder, a gigabyte of one line, JSON nested a million deep (Python's
decoder recurses: RecursionError), bytes that are not UTF-8 or start with a byte-order mark. So:

- `open_regular` opens without blocking (O_NONBLOCK: a FIFO without a writer does not hang the open)
  and refuses anything but a regular file, and a file larger than its cap, with one line (InputError).
- `lines` yields a file's lines one at a time, each at most LINE_CAP bytes: a longer one is yielded as
  None with its number (the caller skips it and says so), and the lines around it are kept.
- `loads` decodes UTF-8 (a leading byte-order mark dropped) and JSON, and refuses nesting deeper than
  DEPTH_CAP, all as ValueError with the reason, never RecursionError.
- `write_whole` writes a file under a temporary name and renames it: a full disk leaves the previous
  file as it was, never a truncated one, and says so in one line (OSError with the path).
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

LINE_CAP = 4 << 20  # one results row with a 1,000-epoch history is about 0.2 MiB
FILE_CAP = 2 << 30  # a results file of 2 GiB holds about a million rows: more is not a results file
JSON_CAP = 64 << 20  # parity, tuning, assessment, stamps, cache metadata: kilobytes in practice
DEPTH_CAP = 32  # a results row nests 4 deep (provenance.machine.gpus[0]); 32 leaves room for growth


class InputError(ValueError):
    """A file that cannot be read as asked (its kind, its size): the message is one line naming it."""


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def open_regular(path: Path, cap: int):
    """A binary file object for `path` if it is a regular file of at most `cap` bytes; InputError if it is
    another kind of file or larger; OSError if it cannot be opened (missing, no permission)."""
    _check(path, os.stat(path), cap)  # before opening: opening a socket fails, a device may act on it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # and if it was swapped meanwhile:
    try:  # O_NONBLOCK, so that a FIFO put in its place does not block the open
        _check(path, os.fstat(fd), cap)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _check(path: Path, st: os.stat_result, cap: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise InputError(f"{path} is {kind}, not a regular file: give the path of a file")
    if st.st_size > cap:
        raise InputError(f"{path} is {_mib(st.st_size)}, more than the {_mib(cap)} such a file may hold")


def read_bytes(path: Path, cap: int = JSON_CAP) -> bytes:
    """The whole of a regular file of at most `cap` bytes (it may not grow past the cap while read)."""
    with open_regular(path, cap) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise InputError(f"{path} grew past {_mib(cap)} while it was read")
    return data


def lines(path: Path, cap: int = FILE_CAP, line_cap: int = LINE_CAP) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the newline) for every line; bytes None for a line over `line_cap`."""
    with open_regular(path, cap) as f:
        n, read = 0, 0
        while True:
            raw = f.readline(line_cap + 1)
            if not raw:
                return
            n, read = n + 1, read + len(raw)
            if read > cap:
                raise InputError(f"{path} grew past {_mib(cap)} while it was read")
            if len(raw) > line_cap and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # the rest of the long line, never held whole
                    raw = f.readline(line_cap)
                    read += len(raw)
                yield n, None
                continue
            yield n, raw.rstrip(b"\r\n")


def depth(value) -> int:
    """How deeply lists and objects nest in a decoded JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


def text(raw: bytes) -> str:
    """UTF-8 text, a leading byte-order mark dropped; ValueError saying where it is not UTF-8."""
    if raw.startswith(codecs.BOM_UTF16_LE) or raw.startswith(codecs.BOM_UTF16_BE):
        raise ValueError("not UTF-8: UTF-16, by its byte-order mark")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 at byte {e.start}") from None


def loads(raw: bytes | str, depth_cap: int = DEPTH_CAP):
    """JSON from UTF-8 bytes or text; ValueError (not UTF-8, not JSON, nested deeper than the cap)."""
    s = text(raw) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(s)
    except RecursionError:
        raise ValueError(f"nested deeper than {depth_cap}") from None
    except ValueError:
        raise ValueError("not JSON") from None
    if depth(value) > depth_cap:
        raise ValueError(f"nested deeper than {depth_cap}")
    return value


def read_json(path: Path, cap: int = JSON_CAP):
    """A whole JSON file; InputError naming the file for every way it can be unusable but missing
    (OSError: missing or unreadable)."""
    raw = read_bytes(path, cap)
    try:
        return loads(raw)
    except ValueError as e:
        raise InputError(f"{path} is {e}") from None


def one_line(message: str, limit: int = 2000) -> str:
    """A message as one printable line: a name the user typed may hold a newline, an escape sequence or
    five thousand characters; each control character is shown escaped, the whole cut at `limit`."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(message))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


# What to do about an OSError met after the checks, by its errno; any other OSError (a refused
# connection, an interrupted call) gets its own message and no advice it does not need.
ADVICE = {
    **dict.fromkeys((errno.ENOSPC, errno.EDQUOT, errno.EFBIG), "free space, or choose another place to write"),
    **dict.fromkeys((errno.EACCES, errno.EPERM, errno.EROFS), "choose a place you may write to"),
    **dict.fromkeys((errno.ENOENT, errno.ENOTDIR), "it was moved or removed meanwhile: check the path"),
    errno.EISDIR: "name a file, not a folder",
}


def error_line(e: Exception) -> str:
    """The one line the harness prints for an error: the message; for an OSError (a disk that filled up
    after the checks, a folder removed meanwhile) what failed, on which path, and what to do."""
    if not isinstance(e, OSError):
        return one_line(str(e))
    what = e.strerror or str(e)
    where = f" ({e.filename})" if e.filename and str(e.filename) not in what else ""
    advice = ADVICE.get(e.errno)
    return one_line(f"{what}{where}: {advice}" if advice else f"{what}{where}")


def escape_what_the_terminal_cannot_print() -> None:
    """stdout and stderr write what their encoding lacks ("×", a framework's name) as escapes: a terminal
    set to ASCII or Latin-1 gets a readable line, not a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file, through any spelling, symbolic link or hard link."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def not_own(path: Path) -> str | None:
    """What makes an existing `path` another file's name (a symbolic link, a hard link, not a regular file), or
    None: the harness writes and appends only to files of their own, so nothing of another's is touched."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
    return "a hard link (one more name of another file)" if st.st_nlink > 1 else None


def write_whole(path: Path, data: str | bytes) -> None:
    """Write `path` whole or not at all (temporary file, fsync, rename); OSError naming the path if not, or if
    it exists as another file's name (`not_own`)."""
    if not path.name or path.is_dir():  # "/", "..", a folder: nothing to rename over
        raise OSError(errno.EISDIR, f"cannot write {path}: it is a folder", str(path))
    if why := not_own(path):
        raise OSError(errno.EEXIST, f"{path} is {why}: remove it, or write elsewhere", str(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise OSError(e.errno, f"cannot write {path} ({e.strerror or e})", str(path)) from None
