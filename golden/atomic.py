"""Files replaced whole: a failed write (a full disk, a read-only directory) leaves the
old file as it was, never a half-written one. Used for everything anyprec writes that a
user may already have a good copy of: model files (golden/export.py), Verilog
(``anyprec verilog -o``) and the performance docs (``anyprec bench --write-docs``)."""

import errno
import os
import secrets
import stat

from .errors import AnyprecError

__all__ = ["write_files", "temp_beside"]


def temp_beside(path):
    """Create an empty temporary file in ``path``'s directory: (fd, name)."""
    directory, name = os.path.split(path)
    while True:
        tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            # 0o666 less the umask, as a plain open() would create the file.
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def write_files(files):
    """Write ``[(path, make_bytes), ...]`` so that no existing file is left half-written.

    Every file's bytes (``make_bytes()``) are written to a temporary file in its own
    directory and synced first; only when all of them are complete are they renamed over
    the destinations (``os.replace``). A failure while writing (a full disk, a read-only
    directory) removes the temporary files and leaves every destination as it was.
    Symbolic links are followed (their targets are replaced, as a plain write would), and
    an existing file keeps its permissions.

    Raises
    ------
    AnyprecError
        On any ``OSError``, naming the file and the reason in one line.
    """
    pending = []                        # (temporary, destination) not renamed yet
    done = []                           # destinations already replaced
    current = None
    try:
        targets = []                    # (real path, mode to keep or None)
        for path, _ in files:
            current = path
            real = os.path.realpath(path)
            try:
                st = os.stat(real)
            except FileNotFoundError:
                targets.append((real, None))
                continue
            # Checked before anything is written: renaming over it would fail half-way.
            if not stat.S_ISREG(st.st_mode):
                raise OSError(errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EEXIST,
                              "is a directory" if stat.S_ISDIR(st.st_mode)
                              else "exists and is not a regular file")
            targets.append((real, stat.S_IMODE(st.st_mode)))
        for (path, make_bytes), (real, mode) in zip(files, targets):
            current = path
            data = make_bytes()
            fd, tmp = temp_beside(real)
            pending.append((tmp, real))
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for (path, _), (tmp, real) in zip(files, list(pending)):
            current = path
            os.replace(tmp, real)
            pending.remove((tmp, real))
            done.append(path)
    except OSError as e:
        # (A rename within one directory practically never fails once the data is on disk.)
        state = (f"{', '.join(map(str, done))} already replaced" if done
                 else "nothing was replaced")
        raise AnyprecError(f"cannot write {current}: {e.strerror or e} ({state})") from None
    finally:
        for tmp, _ in pending:
            try:
                os.unlink(tmp)
            except OSError:
                pass
