"""The Python API (lmpc.load / lmpc.build) on the quick start's program, with a scripted
LM through the real adapters and parser."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from api_helpers import built_router, copy_classify, keyword_transport

import lmpc
from lmpc.runtime.scripted import ScriptedTransport


@pytest.fixture(scope="module")
def router_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_router(tmp_path_factory.mktemp("router"))


def _router(path: Path, **options) -> lmpc.Program:
    options.setdefault("transport", keyword_transport())
    return lmpc.load(path, cache=False, **options)


def test_build_returns_the_result_and_the_artifact(tmp_path: Path) -> None:
    source = copy_classify(tmp_path)
    events: list[object] = []
    built = lmpc.build(source, output=tmp_path / "out" / "R.json", cache=False,
                       transport=keyword_transport(), progress=events.append)
    assert built.artifact == tmp_path / "out" / "R.json" and built.artifact.is_file()
    data = json.loads(built.artifact.read_text())
    assert data["program"] == "Router" == built.summary["program"]
    assert built.scores["test"]["after"] == data["scores"]["test"]["after"]
    assert built.scores["test"]["after"] > 0.5  # the keyword LM is mostly right
    assert built.result.module == "Router" and built.result.passes[0].name == "knn_fewshot"
    assert any(type(e).__name__ == "PassFinished" for e in events)


def test_load_and_call_gives_typed_outputs(router_path: Path) -> None:
    router = _router(router_path)
    out = router(ticket="Please refund the $49 charge on my annual plan.")
    assert isinstance(out, router.Output)
    assert out.category == "billing" and type(out.category) is str  # the value, not a member
    assert out["category"] == "billing" and out.model_dump() == {"category": "billing"}
    assert router.inputs == ["ticket"] and router.outputs == ["category"]
    schema = router.Output.model_json_schema()
    assert schema["$defs"]["Category"]["enum"] == ["billing", "technical", "shipping",
                                                   "account"]
    assert router.scores["test"]["after"] is not None
    assert "Router(ticket: str) -> (category: Category)" in repr(router)


def test_batch_keeps_order_and_runs_in_parallel(router_path: Path) -> None:
    transport = keyword_transport(delay=0.05)
    # a hosted model: the embedded one runs one call at a time
    router = _router(router_path, transport=transport, lm="openai/scripted")
    tickets = ["my parcel never arrived", "the app crashes on start", "refund me",
               "I forgot my password"] * 4
    outs = router.batch([{"ticket": t} for t in tickets], threads=8)
    assert [o.category for o in outs] == ["shipping", "technical", "billing", "account"] * 4
    assert transport.peak_in_flight > 1


def test_batch_failures_raise_after_every_row_or_stand_in_the_list(router_path: Path) -> None:
    router = _router(router_path)
    rows = [{"ticket": "refund me"}, {"ticket": "FAIL please"}, {"ticket": "lost parcel"}]
    with pytest.raises(lmpc.RunError, match="1 of 3 rows failed; first: row 1: ") as info:
        router.batch(rows)
    assert [type(r).__name__ for r in info.value.results] == ["RouterOutput", "RunError",
                                                              "RouterOutput"]
    results = router.batch(rows, return_exceptions=True)
    assert results[0].category == "billing" and isinstance(results[1], lmpc.RunError)
    assert results[2].category == "shipping"


def test_acall_and_abatch_run_concurrently(router_path: Path) -> None:
    router = _router(router_path, transport=keyword_transport(delay=0.1), lm="openai/x")

    async def main() -> list[str]:
        outs = await asyncio.gather(*(router.acall(ticket=t) for t in
                                      ["refund me", "parcel lost", "app crash", "password"]))
        more = await router.abatch([{"ticket": "invoice wrong"}])
        return [o.category for o in [*outs, *more]]

    assert asyncio.run(main()) == ["billing", "shipping", "technical", "account", "billing"]


def test_bad_inputs_are_input_errors_before_any_call(router_path: Path) -> None:
    transport = keyword_transport()
    router = _router(router_path, transport=transport)
    with pytest.raises(lmpc.InputError, match="needs input 'ticket'"):
        router()
    with pytest.raises(lmpc.InputError, match="has no input.s. tiket"):
        router(tiket="refund")
    with pytest.raises(lmpc.InputError, match="row 1: .*needs input 'ticket'"):
        router.batch([{"ticket": "a"}, {}])
    assert isinstance(lmpc.InputError("x"), ValueError)
    assert transport.requests == []


def test_the_lm_is_chosen_per_program_and_per_call_without_globals(router_path: Path) -> None:
    transport = keyword_transport()
    router = _router(router_path, transport=transport)
    other = router.with_lm("openai/other-model")
    router(ticket="refund me")
    other(ticket="refund me")
    router(ticket="refund me", lm="openai/per-call")
    models = [r.model for r in transport.requests]
    assert models == ["local/gemma-3-270m", "openai/other-model", "openai/per-call"]
    assert router.task_lm.model == "local/gemma-3-270m"  # with_lm made a copy


def test_two_programs_in_one_process_use_their_own_models(router_path: Path) -> None:
    seen: dict[str, set[str]] = {"a": set(), "b": set()}
    lock = threading.Lock()

    def reply(request):
        with lock:
            seen["a" if request.model == "openai/a" else "b"].add(request.model)
        return "[[ ## category ## ]]\nbilling\n\n[[ ## completed ## ]]"

    a = lmpc.load(router_path, lm="openai/a", transport=ScriptedTransport(fn=reply),
                  cache=False)
    b = lmpc.load(router_path, lm="openai/b", transport=ScriptedTransport(fn=reply),
                  cache=False)
    a.batch([{"ticket": "x"}] * 4, threads=4)
    b.batch([{"ticket": "y"}] * 4, threads=4)
    assert seen == {"a": {"openai/a"}, "b": {"openai/b"}}


def test_run_errors_are_lmpc_errors(router_path: Path) -> None:
    router = _router(router_path)
    with pytest.raises(lmpc.RunError, match="this ticket fails") as info:
        router(ticket="FAIL now")
    assert isinstance(info.value, lmpc.Error)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(lmpc.LoadError, match="no such file"):
        lmpc.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1, "program": "X"}')
    with pytest.raises(lmpc.LoadError, match="invalid artifact"):
        lmpc.load(bad)
    source = copy_classify(tmp_path)
    with pytest.raises(lmpc.LoadError, match="no module named 'Nope'"):
        lmpc.load(source, program="Nope")
    broken = tmp_path / "broken.lmp"
    broken.write_text("module M(x: str) -> (y: str) {\n  y = predict Nowhere(x = x)\n}\n")
    with pytest.raises(lmpc.LoadError, match=r"broken.lmp:2:\d+: error\["):
        lmpc.load(broken)


def test_a_source_runs_unoptimized(tmp_path: Path) -> None:
    router = _router(copy_classify(tmp_path))
    assert router.artifact is None and router.scores == {}
    assert router(ticket="my parcel is late").category == "shipping"


def test_tools_run_only_when_allowed(tmp_path: Path) -> None:
    agent = Path(__file__).resolve().parent.parent / "examples" / "agent.lmp"
    with pytest.raises(lmpc.NotAllowed, match="agent_tools:convert"):
        lmpc.load(agent, transport=keyword_transport(), cache=False)
    allowed = lmpc.load(agent, transport=keyword_transport(), cache=False, allow_tools=True)
    assert allowed.inputs == ["question"]
    named = lmpc.load(agent, transport=keyword_transport(), cache=False,
                      allow_tools=["convert"])
    assert named.outputs == ["answer"]


def test_build_errors(tmp_path: Path) -> None:
    with pytest.raises(lmpc.BuildError, match="no such file"):
        lmpc.build(tmp_path / "none.lmp")
    source = copy_classify(tmp_path)
    with pytest.raises(lmpc.BuildError, match="no optimize block matches"):
        lmpc.build(source, program="Nope")
    (tmp_path / "data" / "classify.jsonl").write_text("")
    with pytest.raises(lmpc.BuildError):
        lmpc.build(source, cache=False, transport=keyword_transport(),
                   output=tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_class_outputs_are_pydantic_models(tmp_path: Path) -> None:
    source = tmp_path / "extract.lmp"
    source.write_text('''lm m = "openai/scripted" { temperature: 0.0 }

enum Priority { low, high }

class Ticket {
  product: str
  priority: Priority
  tags: list[str]
}

signature Extract {
  """Extract the ticket's fields."""
  in text: str
  out ticket: Ticket
  out urgent: bool
}

module Extractor(text: str) -> (ticket: Ticket, urgent: bool) {
  e = predict Extract(text = text)
  return (ticket = e.ticket, urgent = e.urgent)
}
''')
    reply = ('[[ ## ticket ## ]]\n{"product": "app", "priority": "high", "tags": ["a", "b"]}'
             '\n\n[[ ## urgent ## ]]\ntrue\n\n[[ ## completed ## ]]')
    program = lmpc.load(source, transport=ScriptedTransport(default=reply), cache=False)
    out = program(text="the app is down")
    assert out.urgent is True
    assert type(out.ticket).__name__ == "Ticket" and out.ticket.priority == "high"
    assert out.ticket.tags == ["a", "b"]
    schema = program.Output.model_json_schema()
    assert schema["$defs"]["Priority"]["enum"] == ["low", "high"]
    assert set(schema["$defs"]["Ticket"]["properties"]) == {"product", "priority", "tags"}
