"""Training a LoRA adapter of an embedded model on this machine's CPU.

The optional extra ``lmpc[train]`` (torch CPU, transformers, peft, gguf) is imported here
only, when a build trains; nothing else of lmpc needs it.

1. The base weights are read from the embedded model's own GGUF file (transformers
   dequantizes its Q4_K_M tensors to float32 with the gguf package), so the adapter is
   trained on exactly the weights llama.cpp runs it on.
2. Prompts and completions are tokenized by llama.cpp's own tokenizer of that file (a
   vocabulary-only load), BOS included as the runtime adds it: the token ids trained on
   are the ones the runtime sends.
3. A PEFT LoRA is trained with AdamW on the completion tokens only (the loss of the
   prompt is masked; the vocabulary projection is computed only where a completion token
   is predicted, which saves most of the forward pass's cost on a 262k vocabulary).
   Everything is seeded — the adapter's initialization, the batch order — and torch runs
   deterministic kernels on a fixed number of threads, so a seed gives the same adapter
   (bit for bit on the same machine and library versions).
4. The adapter is written as a llama.cpp LoRA GGUF (``lora_gguf``), which
   ``LocalModel`` loads with ``Llama(lora_path=...)``: ``lmpc run`` keeps llama.cpp's
   speed and grammar-constrained decoding.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lmpc.compiler.finetune.records import TrainingRecord

log = logging.getLogger("lmpc")

#: The projections LoRA adapts (every linear layer of a Gemma/Llama-style block).
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TRAIN_THREADS = 2  # fixed: the float sums (so the adapter's bits) depend on it
INSTALL_HINT = "install the training extra with: pip install 'lmpc[train]'"


class TrainingError(Exception):
    """Training cannot run (missing extra, unsupported model) or failed."""


@dataclass(frozen=True)
class LoraParams:
    """The knobs of one training run (the pass's parameters)."""

    epochs: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 4
    rank: int = 8
    alpha: float = 16.0
    seed: int = 0


@dataclass(frozen=True)
class TrainReport:
    """What a training run produced and cost."""

    steps: int
    records: int
    tokens: int  # prompt + completion tokens per epoch
    first_loss: float
    last_loss: float
    seconds: float
    cpu_seconds: float


def require_training_extra() -> None:
    """``TrainingError`` naming the missing package when the ``train`` extra is absent."""
    import importlib.util

    missing = [name for name in ("torch", "transformers", "peft", "gguf")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainingError(f"training a local model needs {', '.join(missing)}; "
                            f"{INSTALL_HINT}")


def _tokenizer(gguf_path: str) -> Callable[[str, bool], list[int]]:
    """llama.cpp's tokenizer of the model file, as ``LocalModel._tokens`` uses it."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=gguf_path, vocab_only=True, verbose=False)
    bos = [vocab.token_bos()] if vocab._model.add_bos_token() else []

    def tokens(text: str, first: bool) -> list[int]:
        ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=True) if text else []
        return (bos if first else []) + ids

    return tokens


def encode(records: list[TrainingRecord], tokens: Callable[[str, bool], list[int]]
           ) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) per record; the completion is tokenized on its own,
    as the model generates it after the prompt's last token."""
    out = []
    for rec in records:
        if rec.mode != "text" or rec.prompt is None or rec.completion is None:
            raise TrainingError(f"predictor {rec.predictor}: the embedded models train on "
                                "completion-layout records (prompt and completion)")
        out.append((tokens(rec.prompt, True), tokens(rec.completion, False)))
    return out


def train_lora(gguf_path: str, records: list[TrainingRecord], params: LoraParams,
               out_path: str | Path, progress: Callable[[dict[str, Any]], None] | None = None,
               ) -> TrainReport:
    """Train a LoRA of the model in ``gguf_path`` on ``records``; write it to ``out_path``
    as a llama.cpp LoRA GGUF. ``progress`` gets ``{"step", "steps", "loss", "eta_s"}``
    after every optimizer step."""
    require_training_extra()
    if not records:
        raise TrainingError("no training records: the teacher succeeded on no example")
    start, cpu_start = time.monotonic(), time.process_time()
    import torch

    torch.set_num_threads(TRAIN_THREADS)
    torch.manual_seed(params.seed)
    torch.use_deterministic_algorithms(True)
    data = encode(records, _tokenizer(gguf_path))
    model = _load_base(gguf_path)
    peft_model = _with_lora(model, params)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=0.0)
    order_rng = torch.Generator().manual_seed(params.seed)
    per_epoch = math.ceil(len(data) / params.batch_size)
    total = params.epochs * per_epoch
    losses: list[float] = []
    train_start = time.monotonic()
    peft_model.train()
    for _ in range(params.epochs):
        order = torch.randperm(len(data), generator=order_rng).tolist()
        for first in range(0, len(order), params.batch_size):
            batch = [data[i] for i in order[first:first + params.batch_size]]
            loss = _step(peft_model, batch, torch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.item()))
            done = len(losses)
            eta = (time.monotonic() - train_start) / done * (total - done)
            if progress is not None:
                progress({"step": done, "steps": total, "loss": losses[-1], "eta_s": eta})
    _write_adapter(peft_model, model.config, params, out_path)
    return TrainReport(steps=len(losses), records=len(records),
                       tokens=sum(len(p) + len(c) for p, c in data),
                       first_loss=losses[0], last_loss=losses[-1],
                       seconds=time.monotonic() - start,
                       cpu_seconds=time.process_time() - cpu_start)


def _load_base(gguf_path: str) -> Any:
    """The model in float32 from its GGUF (transformers dequantizes with ``gguf``)."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path),
            dtype=torch.float32, attn_implementation="eager")
    except (ValueError, OSError, KeyError) as exc:
        raise TrainingError(f"cannot load {gguf_path} for training: {exc}") from exc
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def _with_lora(model: Any, params: LoraParams) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=params.rank, lora_alpha=params.alpha, lora_dropout=0.0,
                        target_modules=list(TARGET_MODULES), bias="none")
    return get_peft_model(model, config)


def _step(peft_model: Any, batch: list[tuple[list[int], list[int]]], torch: Any) -> Any:
    """The mean cross-entropy of the completion tokens of one right-padded batch."""
    length = max(len(p) + len(c) for p, c in batch)
    ids = torch.zeros(len(batch), length, dtype=torch.long)
    mask = torch.zeros(len(batch), length, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    for row, (prompt, completion) in enumerate(batch):
        seq = prompt + completion
        ids[row, :len(seq)] = torch.tensor(seq)
        mask[row, :len(seq)] = 1
        labels[row, len(prompt):len(seq)] = torch.tensor(completion)
    causal = peft_model.base_model.model  # the *ForCausalLM under the adapter
    hidden = causal.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    logits = causal.lm_head(hidden[keep])
    cap = getattr(causal.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _write_adapter(peft_model: Any, config: Any, params: LoraParams, out_path: str | Path
                   ) -> None:
    from lmpc.compiler.finetune.lora_gguf import write_lora_gguf

    pairs: dict[str, list[Any]] = {}
    for name, tensor in peft_model.state_dict().items():
        for part, slot in ((".lora_A.default.weight", 0), (".lora_B.default.weight", 1)):
            if name.endswith(part):
                module = name.removeprefix("base_model.model.").removesuffix(part)
                pairs.setdefault(module, [None, None])[slot] = tensor.detach().numpy()
    tensors = {m: (a, b) for m, (a, b) in pairs.items()}
    write_lora_gguf(out_path, _gguf_arch(config), int(config.num_hidden_layers), tensors,
                    params.alpha)


def _gguf_arch(config: Any) -> str:
    """llama.cpp's architecture name for a transformers config (gemma3_text -> gemma3)."""
    kind = str(getattr(config, "model_type", ""))
    return {"gemma3_text": "gemma3", "gemma3": "gemma3", "gemma2": "gemma2",
            "llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3"}.get(kind, kind)


def params_record(params: LoraParams) -> dict[str, Any]:
    return asdict(params)
