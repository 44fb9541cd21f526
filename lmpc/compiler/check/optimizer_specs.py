"""Typed specifications of every optimizer pass and its parameters (OPTIMIZERS.md).

Semantic analysis checks each pass of an ``optimize`` block against :data:`OPTIMIZERS`
with :func:`validate_params`; the pass implementations receive the checked parameters
(defaults filled in) as keyword arguments, so a pass never sees a misspelled or
out-of-range value.

>>> params, problems = validate_params("copro", {"breadth": 4})
>>> params["breadth"], params["depth"], problems
(4, 3, [])
>>> _, problems = validate_params("copro", {"bredth": 4})
>>> problems[0].message, problems[0].suggestion
("unknown parameter 'bredth' of copro", 'breadth')
>>> canonical_name("random_search")
'bootstrap_random_search'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

ParamType = Literal["int", "float", "bool", "str", "choice", "ref"]

# Values of a "ref" parameter name something in the program; ``ref`` says what.
# "lm": an LM name or LM role; "lm_or_module": that, or a module name (a teacher).
RefKind = Literal["lm", "lm_or_module"]

LM_ROLES = ("lm", "prompt_model", "teacher", "reflection")


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type, default, allowed range or choices, and what it does."""

    name: str
    type: ParamType
    default: Any
    doc: str
    nullable: bool = False  # `none` is an accepted value
    min: float | None = None
    max: float | None = None
    min_exclusive: bool = False
    choices: tuple[str, ...] = ()
    ref: RefKind | None = None

    def describe(self) -> str:
        """A one-line human description of the accepted values."""
        kind = "one of " + ", ".join(self.choices) if self.type == "choice" else self.type
        if self.min is not None and self.max is not None:
            kind += f" in {'(' if self.min_exclusive else '['}{_num(self.min)}, {_num(self.max)}]"
        elif self.min is not None:
            kind += f" {'>' if self.min_exclusive else '>='} {_num(self.min)}"
        return kind + (" or none" if self.nullable else "")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer pass: its name, what it does, and its parameters in order."""

    name: str
    doc: str
    params: tuple[ParamSpec, ...]
    aliases: tuple[str, ...] = ()
    uses_teacher: bool = False
    uses_prompt_model: bool = False
    uses_reflection: bool = False

    @property
    def param_map(self) -> dict[str, ParamSpec]:
        return {p.name: p for p in self.params}

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}


@dataclass(frozen=True)
class ParamProblem:
    """A parameter that failed its specification.

    ``kind`` is "unknown" (no such parameter), "type" (wrong kind of value),
    "range" (outside the allowed range or choices) or "conflict" (parameters that do
    not go together). ``param`` is None for a problem with the pass as a whole.
    """

    kind: Literal["unknown", "type", "range", "conflict"]
    param: str | None
    message: str
    suggestion: str | None = None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _int(name: str, default: int | None, doc: str, lo: int | None = 0, **kw: Any) -> ParamSpec:
    return ParamSpec(name, "int", default, doc, min=lo, nullable=default is None, **kw)


def _float(name: str, default: float | None, doc: str, lo: float | None = 0.0,
           **kw: Any) -> ParamSpec:
    return ParamSpec(name, "float", default, doc, min=lo, nullable=default is None, **kw)


def _bool(name: str, default: bool, doc: str) -> ParamSpec:
    return ParamSpec(name, "bool", default, doc)


def _choice(name: str, default: str | None, choices: tuple[str, ...], doc: str,
            nullable: bool = False) -> ParamSpec:
    return ParamSpec(name, "choice", default, doc, choices=choices, nullable=nullable)


# ---------------------------------------------------------------- shared parameter groups

_BOOTSTRAP = (
    _int("max_bootstrapped_demos", 4, "most bootstrapped (teacher-produced) demos per predictor"),
    _int("max_labeled_demos", 16, "top up each predictor to this many demos with labeled rows"),
    _int("max_rounds", 1, "attempts per training example; later rounds resample", lo=1),
    _float("metric_threshold", None, "a trace succeeds when the metric reaches this "
           "(default: when it is truthy)", lo=None),
    _int("max_errors", 10, "failed examples tolerated before the pass stops"),
    ParamSpec("teacher", "ref", None, "the program or LM that produces demos "
              "(a module name, an LM name or an LM role; default: the student)",
              nullable=True, ref="lm_or_module"),
)

_AUTO = ("light", "medium", "heavy")

_STRATIFY = _bool("stratify", True, "when the metric's field is an enum or a small label "
                  "set, cover every class of the trainset before repeating one in the "
                  "labeled and bootstrapped demos (false: plain seeded sampling)")


def _with_demo_defaults(bootstrapped: int, labeled: int) -> tuple[ParamSpec, ...]:
    """The bootstrap parameter group with different demo-count defaults."""
    out = []
    for p in _BOOTSTRAP:
        if p.name == "max_bootstrapped_demos":
            p = _int(p.name, bootstrapped, p.doc)
        elif p.name == "max_labeled_demos":
            p = _int(p.name, labeled, p.doc)
        out.append(p)
    return tuple(out)


# ---------------------------------------------------------------- the optimizers

_SPECS: tuple[OptimizerSpec, ...] = (
    OptimizerSpec(
        "labeled_fewshot",
        "Give each predictor k training examples as demos.",
        (
            _int("k", 16, "demos per predictor"),
            _bool("sample", True, "draw a seeded sample (false: the first k rows)"),
            _STRATIFY,
        ),
    ),
    OptimizerSpec(
        "bootstrap_fewshot",
        "Run a teacher over the trainset; successful traces become demos, topped up "
        "with labeled rows.",
        _BOOTSTRAP + (_STRATIFY,),
        uses_teacher=True,
    ),
    OptimizerSpec(
        "bootstrap_random_search",
        "Bootstrap many candidate demo sets (zero-shot, labeled-only, unshuffled, "
        "seeded shuffles) and keep the best on the valset.",
        _BOOTSTRAP + (
            _STRATIFY,
            _int("num_candidate_programs", 16, "shuffled-seed candidates beyond the three "
                 "fixed ones", lo=1),
            _float("stop_at_score", None, "stop early once a candidate reaches this score",
                   lo=None),
        ),
        aliases=("random_search",),
        uses_teacher=True,
    ),
    OptimizerSpec(
        "knn_fewshot",
        "At run time, embed the input and bootstrap demos from its k nearest "
        "training examples.",
        (
            _int("k", 3, "nearest training examples used per input", lo=1),
            ParamSpec("vectorizer", "str", "local", "the embedding model: \"local\" (a "
                      "dependency-light hashing vectorizer) or a litellm embedding model"),
        ) + _BOOTSTRAP,
        uses_teacher=True,
    ),
    OptimizerSpec(
        "copro",
        "Coordinate ascent on instructions: the prompt model writes candidates from "
        "the best attempts so far.",
        (
            _int("breadth", 10, "candidate instructions per round", lo=2),
            _int("depth", 3, "rounds of refinement", lo=1),
            _float("init_temperature", 1.4, "temperature for proposing candidates"),
            _bool("track_stats", True, "record per-round score statistics in the report"),
        ),
        uses_prompt_model=True,
    ),
    OptimizerSpec(
        "mipro_v2",
        "Propose instructions, bootstrap demo sets, and search their combinations "
        "with a seeded TPE sampler over minibatches.",
        (
            _choice("auto", "light", _AUTO, "preset: light (6 candidates, val <= 100), "
                    "medium (12 / 300), heavy (18 / 1000); none: set num_candidates and "
                    "num_trials", nullable=True),
            _int("num_candidates", None, "instruction and demo-set candidates per "
                 "predictor (with auto = none)", lo=1),
            _int("num_trials", None, "search trials (with auto = none)", lo=1),
        ) + _with_demo_defaults(4, 4)[:2] + (
            _bool("minibatch", True, "score trials on minibatches of the valset"),
            _int("minibatch_size", 35, "examples per minibatch", lo=1),
            _int("minibatch_full_eval_steps", 5, "trials between full evaluations", lo=1),
            _int("seed", 9, "seed of the sampler and of candidate bootstrapping", lo=None),
            _float("init_temperature", 1.0, "temperature for proposing instructions"),
            _bool("program_aware", True, "show the proposer the program's structure"),
            _bool("data_aware", True, "show the proposer a summary of the dataset"),
            _bool("tip_aware", True, "give the proposer a randomly drawn tip"),
            _bool("fewshot_aware", True, "show the proposer bootstrapped demos"),
            _STRATIFY,
            _int("parallel_trials", 1, "trials that may run at once (by every worker "
                 "together): trial i is planned from trials 0 .. i - parallel_trials, so the "
                 "result does not depend on how many workers ran it (docs/distributed.md)",
                 lo=1),
            ParamSpec("storage", "str", None, "where the Optuna study lives, so an interrupted "
                      "build resumes and workers share it: an Optuna RDB URL (e.g. "
                      "postgresql://...), or \"memory\" (default: SQLite beside the LM cache)",
                      nullable=True),
        ),
        uses_teacher=True,
        uses_prompt_model=True,
    ),
    OptimizerSpec(
        "simba",
        "Stochastic mini-batch ascent: add demos or LM-written advice where runs "
        "disagree most.",
        (
            _int("bsize", 32, "examples per batch", lo=1),
            _int("num_candidates", 6, "programs sampled per step", lo=1),
            _int("max_steps", 8, "optimization steps", lo=1),
            _int("max_demos", 4, "most demos per predictor"),
            _float("temperature_for_sampling", 0.2, "softmax temperature for drawing "
                   "programs from the pool"),
            _float("temperature_for_candidates", 0.2, "softmax temperature for choosing "
                   "the source program of a new candidate"),
        ),
        uses_prompt_model=True,
    ),
    OptimizerSpec(
        "gepa",
        "Reflective evolutionary search over instructions driven by the metric's "
        "textual feedback, with a Pareto front over validation examples.",
        (
            _choice("auto", None, _AUTO, "budget preset (exactly one of auto, "
                    "max_full_evals, max_metric_calls)", nullable=True),
            _int("max_full_evals", None, "budget in full validation passes", lo=1),
            _int("max_metric_calls", None, "budget in metric calls", lo=1),
            ParamSpec("reflection_lm", "ref", None, "the LM that writes new instructions "
                      "(default: the reflection role)", nullable=True, ref="lm"),
            _int("reflection_minibatch_size", 3, "training examples per reflection", lo=1),
            _choice("candidate_selection", "pareto", ("pareto", "current_best"),
                    "how the parent of the next mutation is picked"),
            _bool("use_merge", True, "also merge descendants of a common ancestor"),
            _int("max_merge_invocations", 5, "most merge attempts"),
            _bool("skip_perfect_score", True, "skip reflection on minibatches already perfect"),
            _int("seed", 0, "seed of the search", lo=None),
        ),
        uses_reflection=True,
    ),
    OptimizerSpec(
        "bootstrap_finetune",
        "Turn the teacher's accepted traces into training records in each predictor's "
        "own prompt format and fine-tune the task model on them (a LoRA trained locally "
        "for the embedded model, the provider's fine-tuning API for hosted ones).",
        (
            _bool("multitask", True, "one model for all predictors (false: one each)"),
            _int("epochs", 3, "training epochs", lo=1),
            _float("learning_rate", 2e-4, "optimizer learning rate (local training)",
                   min_exclusive=True),
            _int("batch_size", 4, "training batch size", lo=1),
            _int("lora_rank", 8, "rank of the LoRA adapter (local training)", lo=1),
            _float("lora_alpha", 16.0, "LoRA alpha: the adapter is scaled by alpha / rank "
                   "(local training)", min_exclusive=True),
            _int("seed", 0, "seed of the adapter's initialization and the batch order",
                 lo=None),
            _float("metric_threshold", None, "a trace is kept when the metric reaches this "
                   "(default: when it is truthy)", lo=None),
            _int("max_errors", 10, "failed teacher runs tolerated before the pass stops"),
            _int("max_labeled_demos", 16, "labeled demos for a teacher that has none"),
            ParamSpec("teacher", "ref", None, "the program or LM whose traces are used "
                      "(a module name, an LM name or an LM role; default: the program as "
                      "it is)", nullable=True, ref="lm_or_module"),
            _float("timeout", 3600.0, "seconds to wait for a hosted fine-tuning job",
                   min_exclusive=True),
        ),
        uses_teacher=True,
    ),
    OptimizerSpec(
        "better_together",
        "Alternate prompt optimization (p) and weight optimization (w) in the given "
        "order; score the program after each step and keep the best.",
        (
            ParamSpec("strategy", "str", "p -> w -> p", "steps joined by '->', each p or w"),
            ParamSpec("prompt_optimizer", "str", "bootstrap_random_search", "the pass of "
                      "each p step, with its parameters: \"name\" or \"name(k = v, ...)\""),
            ParamSpec("weight_optimizer", "str", "bootstrap_finetune", "the pass of each w "
                      "step, with its parameters: \"name\" or \"name(k = v, ...)\""),
            _float("valset_ratio", 0.1, "share of the trainset held out to score the steps "
                   "on when the data has no val split (with one, the steps are scored on it)",
                   max=1.0, min_exclusive=True),
        ),
        uses_teacher=True,
    ),
    OptimizerSpec(
        "ensemble",
        "Combine several programs (the previous pass's candidates) per output field.",
        (
            _int("size", None, "a random sample of this many programs (default: all)", lo=1),
            _int("top", None, "the best this many candidates of the previous pass", lo=1),
            ParamSpec("reduce", "str", "majority", "\"majority\" or a Python callable "
                      "\"pkg.mod:fn\""),
        ),
    ),
)

#: Every optimizer pass by canonical name.
OPTIMIZERS: dict[str, OptimizerSpec] = {spec.name: spec for spec in _SPECS}

#: Alternative spellings accepted in source -> canonical name.
ALIASES: dict[str, str] = {alias: s.name for s in _SPECS for alias in s.aliases}


def canonical_name(name: str) -> str | None:
    """The canonical pass name for ``name`` (itself or an alias), or None if unknown."""
    if name in OPTIMIZERS:
        return name
    return ALIASES.get(name)


def all_names() -> list[str]:
    """Every accepted pass name, aliases included (for did-you-mean)."""
    return [*OPTIMIZERS, *ALIASES]


def validate_params(
    name: str, params: dict[str, Any]
) -> tuple[dict[str, Any], list[ParamProblem]]:
    """Check ``params`` against the spec of pass ``name``; fill in defaults.

    Values are plain Python values as written in the source (identifiers such as
    ``light`` arrive as strings; ``none`` as None). Ints are accepted where floats are
    expected and converted. Returns the full parameter dict and every problem found.
    ``ref`` parameters are only checked to be names here; the checker resolves them.
    """
    canon = canonical_name(name)
    if canon is None:
        hint = _closest(name, all_names())
        return {}, [ParamProblem("unknown", None, f"unknown optimizer '{name}'", hint)]
    spec = OPTIMIZERS[canon]
    pmap = spec.param_map
    checked = spec.defaults()
    problems: list[ParamProblem] = []
    for key, value in params.items():
        pspec = pmap.get(key)
        if pspec is None:
            problems.append(ParamProblem("unknown", key, f"unknown parameter '{key}' of "
                                         f"{canon}", _closest(key, list(pmap))))
            continue
        converted, problem = _check_value(canon, pspec, value)
        if problem is not None:
            problems.append(problem)
        else:
            checked[key] = converted
    if not problems:
        problems.extend(_check_combination(canon, checked, set(params)))
    return checked, problems


def _closest(name: str, candidates: list[str]) -> str | None:
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _type_name(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    return {int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def _check_value(opt: str, p: ParamSpec, value: Any) -> tuple[Any, ParamProblem | None]:
    """Convert and check one value; return (value, None) or (None, problem)."""
    where = f"{opt}.{p.name}"
    if value is None or (p.nullable and value == "none"):
        if p.nullable:
            return None, None
        return None, ParamProblem("type", p.name, f"{where} cannot be none (expected "
                                  f"{p.describe()})")
    bad_type = ParamProblem("type", p.name, f"{where} expects {p.describe()}, got "
                            f"{_type_name(value)} {value!r}")
    if p.type == "bool":
        return (value, None) if isinstance(value, bool) else (None, bad_type)
    if p.type in ("int", "float"):
        ok = isinstance(value, int) or (p.type == "float" and isinstance(value, float))
        if isinstance(value, bool) or not ok:
            return None, bad_type
        value = float(value) if p.type == "float" else value
        return value, _check_range(where, p, value)
    if not isinstance(value, str):
        return None, bad_type
    if p.type == "choice" and value not in p.choices:
        return None, ParamProblem("range", p.name, f"{where} must be {p.describe()}, got "
                                  f"{value!r}", _closest(value, list(p.choices)))
    return value, _check_str(where, p, value)


def _check_range(where: str, p: ParamSpec, value: float) -> ParamProblem | None:
    low_bad = p.min is not None and (value <= p.min if p.min_exclusive else value < p.min)
    high_bad = p.max is not None and value > p.max
    if low_bad or high_bad:
        return ParamProblem("range", p.name, f"{where} must be {p.describe()}, got "
                            f"{_num(value)}")
    return None


def _check_str(where: str, p: ParamSpec, value: str) -> ParamProblem | None:
    """Shape checks of string parameters whose format is fixed."""
    if p.name == "strategy":
        steps = [s.strip() for s in value.split("->")]
        if not steps or any(s not in ("p", "w") for s in steps):
            return ParamProblem("range", p.name, f"{where} must be steps 'p' or 'w' joined "
                                f"by '->', got {value!r}")
    if p.name in ("prompt_optimizer", "weight_optimizer"):
        problem = pass_spec_problem(value)
        if problem is not None:
            return ParamProblem("range", p.name, f"{where}: {problem}")
    if p.name == "reduce" and value != "majority" and ":" not in value:
        return ParamProblem("range", p.name, f"{where} must be \"majority\" or a Python "
                            f"callable \"pkg.mod:fn\", got {value!r}")
    if p.type == "ref" and not value.isidentifier():
        return ParamProblem("type", p.name, f"{where} expects a name, got {value!r}")
    return None


def _check_combination(opt: str, params: dict[str, Any], given: set[str]) -> list[ParamProblem]:
    """Rules that involve several parameters of one pass."""
    if opt == "mipro_v2":
        # a checked PassIR holds every default (None here), so only a value counts as set
        manual = [k for k in ("num_candidates", "num_trials")
                  if k in given and params[k] is not None]
        if params["auto"] is not None and manual:
            return [ParamProblem("conflict", manual[0], f"mipro_v2.{manual[0]} is set by "
                                 f"auto = {params['auto']}; write auto = none to set it")]
        if params["auto"] is None and len(manual) < 2:
            return [ParamProblem("conflict", None, "mipro_v2 with auto = none needs both "
                                 "num_candidates and num_trials")]
    if opt == "gepa":
        budgets = [k for k in ("auto", "max_full_evals", "max_metric_calls")
                   if params[k] is not None]
        if len(budgets) != 1:
            return [ParamProblem("conflict", budgets[1] if len(budgets) > 1 else None,
                                 "gepa needs exactly one budget: auto, max_full_evals or "
                                 f"max_metric_calls (got {len(budgets)})")]
    if opt == "ensemble" and params["size"] is not None and params["top"] is not None:
        return [ParamProblem("conflict", "top", "ensemble takes size or top, not both")]
    return []


def reference_table(names: Iterable[str] | None = None) -> str:
    """A Markdown table of the optimizers ``names`` (default: all) and their parameters.

    docs/optimizers.md is this table for the implemented passes; a test keeps it in sync.
    """
    wanted = set(names) if names is not None else None
    lines = ["| optimizer | parameter | accepts | default | meaning |", "|---|---|---|---|---|"]
    for spec in _SPECS:
        if wanted is not None and spec.name not in wanted:
            continue
        for p in spec.params:
            default = _format_default(p.default)
            lines.append(f"| {spec.name} | {p.name} | {p.describe()} | {default} | {p.doc} |")
    return "\n".join(lines)


def _format_default(value: Any) -> str:
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)


# ---------------------------------------------------------------- a pass named in a string
#
# better_together takes the passes it alternates as strings in the optimize block's own
# call syntax: "knn_fewshot(k = 4)". Values are numbers, true/false/none or quoted text.

_PASS_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*$", re.S)
_ARG = re.compile(r"\s*([A-Za-z_]\w*)\s*=\s*(\"[^\"]*\"|[^,]+?)\s*(?:,|$)")


def parse_pass_spec(text: str) -> tuple[str, dict[str, Any]]:
    """``"name(k = v, ...)"`` -> (canonical name, raw parameters); ``ValueError`` if bad.

    >>> parse_pass_spec('knn_fewshot(k = 4, vectorizer = "local")')
    ('knn_fewshot', {'k': 4, 'vectorizer': 'local'})
    >>> parse_pass_spec("random_search")
    ('bootstrap_random_search', {})
    """
    match = _PASS_CALL.match(text)
    if match is None:
        raise ValueError(f"expected \"name\" or \"name(k = v, ...)\", got {text!r}")
    name, body = match.group(1), (match.group(2) or "").strip()
    canon = canonical_name(name)
    if canon is None:
        hint = _closest(name, all_names())
        raise ValueError(f"unknown optimizer '{name}'" + (f" (did you mean '{hint}'?)"
                                                          if hint else ""))
    params: dict[str, Any] = {}
    pos = 0
    while pos < len(body):
        arg = _ARG.match(body, pos)
        if arg is None or arg.end() == pos:
            raise ValueError(f"cannot read the parameters of {name}: {body[pos:]!r}")
        params[arg.group(1)] = _literal(arg.group(2))
        pos = arg.end()
    return canon, params


def _literal(text: str) -> Any:
    text = text.strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return text[1:-1]
    lowered = {"true": True, "false": False, "none": None}
    if text in lowered:
        return lowered[text]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # an identifier value, as the optimize block reads `auto = light`


def pass_spec_problem(text: str) -> str | None:
    """What is wrong with a pass named in a string (its name or parameters), or None."""
    try:
        name, params = parse_pass_spec(text)
    except ValueError as exc:
        return str(exc)
    if name in ("better_together", "ensemble"):
        return f"{name} cannot be a step of better_together"
    _, problems = validate_params(name, params)
    if problems:
        return problems[0].message
    return None
