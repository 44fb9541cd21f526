"""A PEFT LoRA adapter as a llama.cpp LoRA GGUF file, written with the ``gguf`` package.

llama.cpp's own converter (``convert_lora_to_gguf.py``) ships only in its source tree; what
it writes for a plain LoRA is small, so it is written here directly:

- metadata ``general.architecture`` (the base model's, e.g. ``gemma3``),
  ``general.type = "adapter"``, ``adapter.type = "lora"``, ``adapter.lora.alpha``;
- per adapted weight ``W`` (named as llama.cpp names it, ``blk.3.attn_q.weight``) two
  tensors ``<name>.lora_a`` (PEFT's ``lora_A``, shape rank x in) and ``<name>.lora_b``
  (``lora_B``, out x rank). llama.cpp adds ``scale * alpha / rank * B(A x)`` to ``W x``,
  the same as PEFT's ``alpha / r`` scaling.

Names come from ``gguf``'s own tensor name map for the architecture, so the file
matches what llama.cpp's converter would write. Tensors are stored as F16 (half the
size of F32; llama.cpp applies either).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HF_SUFFIXES = (".weight",)


def gguf_name(arch: str, n_layers: int, hf_module: str) -> str:
    """llama.cpp's name for the weight of a Hugging Face module
    (``model.layers.0.self_attn.q_proj`` -> ``blk.0.attn_q.weight``)."""
    import gguf

    arch_id = next((k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch), None)
    if arch_id is None:
        raise ValueError(f"gguf does not know the architecture {arch!r}")
    name = gguf.get_tensor_name_map(arch_id, n_layers).get_name(
        hf_module + ".weight", try_suffixes=HF_SUFFIXES)
    if name is None:
        raise ValueError(f"no llama.cpp tensor for {hf_module!r} in architecture {arch!r}")
    return name


def write_lora_gguf(path: str | Path, arch: str, n_layers: int,
                    tensors: dict[str, tuple[Any, Any]], alpha: float,
                    name: str = "lmpc LoRA adapter") -> Path:
    """Write ``tensors`` — Hugging Face module name -> (lora_A, lora_B) as numpy arrays —
    to ``path`` (atomically: a temp file, then a rename); returns the path."""
    import gguf
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), arch)
    try:
        writer.add_string("general.type", "adapter")
        writer.add_string("general.name", name)
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(alpha))
        for module in sorted(tensors):
            a, b = tensors[module]
            a, b = np.asarray(a), np.asarray(b)
            if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
                raise ValueError(f"{module}: lora_A {a.shape} and lora_B {b.shape} do not "
                                 "make a rank-r product")
            target = gguf_name(arch, n_layers, module)
            writer.add_tensor(target + ".lora_a", np.ascontiguousarray(a, dtype=np.float16))
            writer.add_tensor(target + ".lora_b", np.ascontiguousarray(b, dtype=np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    os.replace(tmp, path)
    return path


def read_lora_gguf(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata and tensors (name -> numpy array, in PEFT's shapes) of a LoRA GGUF."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    meta: dict[str, Any] = {}
    for key, fld in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = fld.parts[fld.data[0]] if fld.data else None
        if fld.types and fld.types[0] == gguf.GGUFValueType.STRING:
            meta[key] = bytes(value).decode("utf-8")
        elif value is not None:
            meta[key] = value.tolist()[0] if hasattr(value, "tolist") else value
    arrays = {}
    for t in reader.tensors:
        # GGUF lists dimensions innermost first; numpy's shape is the reverse
        shape = tuple(int(n) for n in reversed(t.shape.tolist()))
        arrays[t.name] = np.array(t.data).reshape(shape)
    return meta, arrays
