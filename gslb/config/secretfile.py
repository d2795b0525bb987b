"""Files that hold secrets (``cookies.secret_file``, DNSSEC private keys): read at config load,
refused when anyone but their owner may read or write them.

One place for the check, so every secret named in a config is held to it
(``health.report_key_file`` can use it too).
"""

from __future__ import annotations

import os
import stat

#: Permission bits a secret file must not have: any access by its group or
#: by others (``chmod 600`` or ``400`` passes), as ssh asks of private keys.
FORBIDDEN_MODE = 0o077


class SecretFileError(ValueError):
    """A secret file cannot be used; the message says why and how to fix it."""


def read_secret_lines(path: str) -> list[tuple[int, str]]:
    """The lines of the secret file ``path`` that hold something, as
    ``(line number from 1, text stripped)``; empty lines and lines starting
    with ``#`` are left out. Raises ``SecretFileError`` as
    :func:`read_secret_text`."""
    text = read_secret_text(path)
    return [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def read_secret_text(path: str | os.PathLike[str]) -> str:
    """The text of the secret file ``path`` (``cookies.secret_file``, a
    DNSSEC private key file).

    Raises ``SecretFileError`` when the file cannot be opened or read, is
    not a regular file, is not UTF-8, or has any of ``FORBIDDEN_MODE``'s
    bits (the mode is read from the open file, so it is the file read).
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        mode = stat.S_IMODE(info.st_mode)
        if mode & FORBIDDEN_MODE:
            raise SecretFileError(
                f"{path} has mode {mode:04o}: its group or others may read or write it; "
                f"make it readable by its owner only (chmod 600 {path})")
        try:
            return handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretFileError(f"cannot read {path}: {exc}") from None


__all__ = ["FORBIDDEN_MODE", "SecretFileError", "read_secret_lines", "read_secret_text"]
