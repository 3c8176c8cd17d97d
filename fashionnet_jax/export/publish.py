"""An export folder that appears whole or not at all.

`check_out(out)` refuses an --out that cannot be a new version folder before
any slow work; `publish(out, write)` runs `write(folder)` into a hidden sibling
`.NAME.tmp-XXXXXXXX` (TF Serving takes only numeric names for versions) and renames
it to `out` when `write` returns. A disk or permission failure becomes one line
naming --out and the cause, and the sibling is removed, so a retry starts clean.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil

from fashionnet_jax.cli import UsageError

# A failure whose message carries the OS's words for one of these is the disk's or
# the permissions', not a bug: TensorFlow's file layer raises its own errors with them
# (`...; No space left on device [Op:SaveV2]`).
DISK_ERRNOS = (
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EFBIG,
    errno.EIO,
)


def check_out(out: str) -> None:
  """Refuses an empty --out, one that exists and is not an empty folder, or an unwritable parent.

  Raises:
    UsageError: one line naming --out.
  """
  if not out.strip():
    raise UsageError("--out is empty or blank: name the version folder to write, e.g. MODEL_BASE/1")
  if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
    raise UsageError(f"--out {out}: exists and is not an empty folder")
  parent = os.path.dirname(os.path.abspath(out))
  if os.path.exists(parent) and not os.access(parent, os.W_OK):
    raise UsageError(f"--out {out}: {parent} is not writable")


def disk_cause(error: BaseException) -> str | None:
  """The OS's words for a file-system failure in `error`, else None (a bug)."""
  if isinstance(error, OSError) and error.errno:
    return os.strerror(error.errno)
  if not isinstance(error, Exception):
    return None  # KeyboardInterrupt, SystemExit
  text = str(error)
  return next((os.strerror(n) for n in DISK_ERRNOS if os.strerror(n) in text), None)


def publish(out: str, write):
  """Returns `write(folder)` after renaming its folder, a new hidden sibling of `out`, to `out`.

  An existing empty `out` is replaced (rename(2) takes an empty folder's place).

  Raises:
    UsageError: a file-system failure, one line naming --out and the cause; the
      sibling is removed.
  """
  target = os.path.abspath(out)
  parent, name = os.path.split(target)
  staging = os.path.join(parent, f".{name}.tmp-{secrets.token_hex(4)}")
  try:
    os.makedirs(parent, exist_ok=True)
    os.mkdir(staging)  # mode 0o777 less the umask, as the version folder should be
  except OSError as e:
    raise UsageError(f"--out {out}: {e.filename or parent}: {disk_cause(e)}") from None
  try:
    result = write(staging)
    try:
      os.rename(staging, target)
    except OSError as e:
      if e.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
        raise UsageError(
            f"--out {out}: exists and is not an empty folder (written meanwhile)"
        ) from None
      raise
    return result
  except BaseException as e:
    shutil.rmtree(staging, ignore_errors=True)
    cause = None if isinstance(e, UsageError) else disk_cause(e)
    if cause is None:
      raise
    raise UsageError(f"--out {out}: {cause}; the partial copy was removed") from None
