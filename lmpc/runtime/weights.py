"""Tuned weights files: pinned by size and sha256, checked before anything loads them.

An artifact is untrusted input (docs/trust.md): it may name a weights file only inside
its own folder, and the file must be the one the build wrote. A missing, moved, grown
or edited file is refused with an error that names it, never loaded.

>>> import tempfile, os
>>> folder = tempfile.mkdtemp()
>>> path = os.path.join(folder, "a.gguf")
>>> _ = open(path, "wb").write(b"weights")
>>> pin = WeightsFileIR(path="a.gguf", sha256=file_sha256(path), size=7)
>>> verify_weights(pin, folder).name
'a.gguf'
>>> _ = open(path, "ab").write(b"!")
>>> verify_weights(pin, folder)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
lmpc.runtime.weights.WeightsError: tuned weights a.gguf: size 8 bytes, the artifact records 7 ...
"""

from __future__ import annotations

import os
from pathlib import Path

from lmpc.files import file_sha256
from lmpc.ir import WeightsFileIR


class WeightsError(Exception):
    """A weights file that is missing, outside its folder, or not the recorded one."""


def resolve_weights(pin: WeightsFileIR, folder: str | Path) -> Path:
    """The file ``pin`` names, relative to ``folder``; it must lie inside it."""
    root = Path(folder).resolve()
    path = (root / pin.path).resolve() if not os.path.isabs(pin.path) else Path(pin.path)
    if not os.path.isabs(pin.path) and root not in path.parents:
        raise WeightsError(f"tuned weights {pin.path}: outside the artifact's folder {root}; "
                           "an artifact may only name weights stored beside it")
    return path


def verify_weights(pin: WeightsFileIR, folder: str | Path) -> Path:
    """The checked path of ``pin``'s file, or ``WeightsError`` naming what is wrong."""
    path = resolve_weights(pin, folder)
    if not path.is_file():
        raise WeightsError(f"tuned weights {pin.path}: no such file (expected beside the "
                           f"artifact in {Path(folder).resolve()}; copy it with the artifact "
                           "or rebuild)")
    size = path.stat().st_size
    if size != pin.size:
        raise WeightsError(f"tuned weights {pin.path}: size {size} bytes, the artifact "
                           f"records {pin.size} (the file was changed or replaced; rebuild "
                           "or restore it)")
    digest = file_sha256(path)
    if digest != pin.sha256:
        raise WeightsError(f"tuned weights {pin.path}: sha256 {digest[:16]}..., the "
                           f"artifact records {pin.sha256[:16]}... (the file was changed or "
                           "replaced; rebuild or restore it)")
    return path
