"""One predictor step in flight: its LM, its adapter, and the LM calls it makes.

``StepCall.ask`` renders a signature with the adapter, sends it through the LM client,
and parses the reply; when a chat reply cannot be parsed it retries once in the JSON
format and counts the fallback in ``ctx.stats["adapter_fallbacks"]``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lmpc.ir import LMIR, FieldIR, PredictorIR, ProgramIR, SignatureIR, TypeRef
from lmpc.runtime.adapters import ADAPTERS, FALLBACK, Rendered, choose, takes_grammar
from lmpc.runtime.adapters.completion import CompletionAdapter
from lmpc.runtime.context import RunContext
from lmpc.runtime.errors import ParseFailure
from lmpc.runtime.lm_types import LMRequest
from lmpc.runtime.vectorize import select_demos

STR = TypeRef(kind="str")
# A parse retry's rollout: far from the small indices best_of_n and bootstrap rounds use,
# so a retry never shares a cache key (or a sampling seed) with another sample.
PARSE_RETRY_ROLLOUT = 1 << 20
HINT_FIELDS = {
    "previous_attempt": FieldIR(
        name="previous_attempt", type=STR, desc="an earlier answer of yours, to improve on"
    ),
    "feedback": FieldIR(name="feedback", type=STR, desc="what to fix in that answer"),
}


class StepCall:
    """Calls made on behalf of one predictor step of one module run."""

    def __init__(
        self, program: ProgramIR, predictor: PredictorIR, ctx: RunContext, module: str
    ) -> None:
        self.program = program
        self.predictor = predictor
        self.ctx = ctx
        self.lm: LMIR = ctx.lm_named(predictor.lm)
        self.adapter = choose(predictor.adapter, self.lm)
        self.grammar = takes_grammar(self.lm)
        self.attribution = {**ctx.attribution, "module": module, "predictor": predictor.id}
        self.call_ids: list[str] = []
        self._retry = 0  # the parse retry under way (0: the first attempt)

    def demos(self, inputs: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The predictor's demos, minus any that show the example being run.

        A predictor tuned by ``knn_fewshot`` (``options["knn"]``) gets the demos of the
        training examples nearest to ``inputs`` instead.
        """
        knn = self.predictor.options.get("knn")
        if knn and inputs is not None:
            demos = [d.values for d in select_demos(knn, inputs)]
        else:
            demos = [d.values for d in self.predictor.demos]
        hide = self.ctx.hide_example
        if not hide:
            return demos
        return [d for d in demos if not _same_inputs(d, hide)]

    def ask(
        self,
        signature: SignatureIR,
        inputs: dict[str, Any],
        demos: list[dict[str, Any]] | None = None,
        *,
        temperature: float | None = None,
        rollout: int | None = None,
        hints: dict[str, str] | None = None,
        grammar: str | None = None,
    ) -> dict[str, Any]:
        """One LM round trip for ``signature``: typed outputs, or ``ParseFailure``.

        ``grammar`` replaces the adapter's own (a predictor that knows more than the
        field types, as ReAct knows each tool's parameters). A reply that cannot be
        parsed is asked again ``ctx.parse_retries`` times, each with a fresh rollout, so
        neither the cache nor a resample of another step returns the same reply; the
        unparsable one stays cached under its own key, so a rebuild takes the same path
        at no cost. Retries are counted (``parse_retries``)."""
        base = self.ctx.rollout if rollout is None else rollout
        for attempt in range(self.ctx.parse_retries + 1):
            self._retry = attempt
            try:
                return self._ask_once(signature, inputs, demos, temperature,
                                      base + attempt * PARSE_RETRY_ROLLOUT, hints, grammar)
            except ParseFailure:
                if attempt == self.ctx.parse_retries:
                    raise
                self.ctx.stats.incr("parse_retries")
            finally:
                self._retry = 0
        raise AssertionError("unreachable")

    def _ask_once(self, signature: SignatureIR, inputs: dict[str, Any],
                  demos: list[dict[str, Any]] | None, temperature: float | None,
                  rollout: int | None, hints: dict[str, str] | None,
                  grammar: str | None) -> dict[str, Any]:
        demos = self.demos(inputs) if demos is None else demos
        if hints:
            signature, inputs = with_hints(signature, inputs, hints)
        adapter = self.adapter
        rendered = adapter.format(self.predictor, signature, demos, inputs, self.program)
        if grammar is not None and rendered.grammar is not None:
            rendered = replace(rendered, grammar=grammar)
        text = self.send(rendered, temperature, rollout)
        try:
            return adapter.parse(text, signature, self.program)
        except ParseFailure as first:
            if isinstance(adapter, CompletionAdapter):
                return self._continue(adapter, rendered, text, signature, first,
                                      temperature, rollout)
            fallback = FALLBACK.get(adapter.name)
            if fallback is None:
                raise ParseFailure(f"predictor {self.predictor.id}: {first}") from None
            self.ctx.stats.incr("adapter_fallbacks")
            backup = ADAPTERS[fallback]
            rendered = backup.format(self.predictor, signature, demos, inputs, self.program)
            text = self.send(rendered, temperature, rollout)
            try:
                return backup.parse(text, signature, self.program)
            except ParseFailure as second:
                raise ParseFailure(
                    f"predictor {self.predictor.id}: {adapter.name} format: {first}; "
                    f"{fallback} fallback: {second}"
                ) from None

    def _continue(self, adapter: CompletionAdapter, rendered: Rendered, text: str,
                  signature: SignatureIR, failure: ParseFailure, temperature: float | None,
                  rollout: int | None) -> dict[str, Any]:
        """Base models: ask again from the first missing output label (counted)."""
        for _ in signature.outputs:
            step = adapter.continuation(rendered, text, signature, self.program)
            if step is None:
                break
            request, text = step
            self.ctx.stats.incr("completion_continuations")
            more = self.send(request, temperature, rollout)
            if not more.strip():
                break  # the model has nothing to add: the label alone is not a value
            text += more
            try:
                return adapter.parse(text, signature, self.program)
            except ParseFailure as exc:
                failure = exc
        raise ParseFailure(f"predictor {self.predictor.id}: {failure}") from None

    def send(
        self, rendered: Rendered, temperature: float | None = None, rollout: int | None = None
    ) -> str:
        """Send a rendered request with this step's LM settings; returns the reply text."""
        request = LMRequest(
            model=self.lm.model,
            mode=rendered.mode,
            messages=rendered.messages,
            prompt=rendered.prompt,
            settings=self.settings(rendered, temperature),
            rollout=self.ctx.rollout if rollout is None else rollout,
        )
        attribution = ({**self.attribution, "parse_retry": self._retry} if self._retry
                       else self.attribution)
        response = self.ctx.client.complete(request, attribution)
        self.call_ids.append(response.call_id)
        return response.text

    def settings(self, rendered: Rendered, temperature: float | None) -> dict[str, Any]:
        settings = dict(self.lm.settings)
        if self.lm.fallbacks:
            settings["fallbacks"] = list(self.lm.fallbacks)
        if rendered.stop:
            own = settings.get("stop") or []
            own = [own] if isinstance(own, str) else list(own)
            settings["stop"] = list(dict.fromkeys([*rendered.stop, *own]))[:4]
        if rendered.max_tokens:
            cap = settings.get("max_tokens")
            settings["max_tokens"] = min(cap, rendered.max_tokens) if cap else rendered.max_tokens
        if rendered.grammar and self.grammar:
            settings["grammar"] = rendered.grammar
        adapter = self.lm.tuned.adapter if self.lm.tuned is not None else None
        if adapter is not None:  # checked against its sha256 before it is loaded
            settings["lora_path"], settings["lora_sha256"] = adapter.path, adapter.sha256
        chosen = temperature if temperature is not None else self.ctx.temperature
        if chosen is not None:
            settings["temperature"] = chosen
        return settings


def with_hints(
    sig: SignatureIR, inputs: dict[str, Any], hints: dict[str, str]
) -> tuple[SignatureIR, dict[str, Any]]:
    """Add hint inputs (previous attempt, feedback) to a signature for a retry."""
    extra = [HINT_FIELDS.get(k) or FieldIR(name=k, type=STR) for k in hints]
    return sig.model_copy(update={"inputs": [*sig.inputs, *extra]}), {**inputs, **hints}


def _same_inputs(demo: dict[str, Any], hide: dict[str, Any]) -> bool:
    shared = [k for k in hide if k in demo]
    return bool(shared) and all(demo[k] == hide[k] for k in shared)


class _Derived:
    """Signatures derived from a declared one (``+ reasoning``, ReAct's step), built once.

    Keyed by the source's identity and checked against its field lists and
    instructions, so the adapter's prompt memo sees the same derived object on every
    call (a new object per call would re-render the prompt each time).
    """

    def __init__(self, size: int = 1024) -> None:
        self._entries: dict[tuple[int, str], tuple[Any, ...]] = {}
        self._size = size
        self._lock = threading.Lock()

    def get(self, sig: SignatureIR, tag: str, build: Callable[[SignatureIR], SignatureIR]
            ) -> SignatureIR:
        key = (id(sig), tag)
        stamp = (sig.inputs, sig.outputs, len(sig.inputs), len(sig.outputs), sig.instructions)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is sig and _same(entry[1], stamp):
            return entry[2]
        derived = build(sig)
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = (sig, stamp, derived)
        return derived


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return a[0] is b[0] and a[1] is b[1] and a[2:] == b[2:]


DERIVED = _Derived()
