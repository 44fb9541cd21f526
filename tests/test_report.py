"""``lmpc report``: the page's content for the quick start's artifact (knn_fewshot) and a
MIPROv2 artifact, both built with scripted LMs; then the page in a real headless
Chromium (Debian's), screenshotted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from api_helpers import built_mipro_router, built_router  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from lmpc.cli import main  # noqa: E402
from lmpc.report import external_references  # noqa: E402


class Page(HTMLParser):
    """What the page holds: ids, svg count, text."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: dict[str, int] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.ids |= {v for k, v in attrs if k == "id" and v}

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(html: str) -> Page:
    page = Page()
    page.feed(html)
    return page


@pytest.fixture(scope="module")
def knn_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifact = built_router(tmp_path_factory.mktemp("knn"))
    result = CliRunner().invoke(main, ["report", str(artifact)])
    assert result.exit_code == 0, result.output
    return artifact.with_suffix(".html")


@pytest.fixture(scope="module")
def mipro_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifact = built_mipro_router(tmp_path_factory.mktemp("mipro"))
    out = artifact.parent / "mipro-report.html"
    result = CliRunner().invoke(main, ["report", str(artifact), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}"
    return out


def test_the_quick_start_report_has_scores_usage_examples_and_the_prompt_diff(
        knn_report: Path) -> None:
    html = knn_report.read_text(encoding="utf-8")
    page = _page(html)
    artifact = json.loads(knn_report.with_suffix(".json").read_text())
    assert {"scores", "passes", "usage", "examples", "prompts", "plot-scores",
            "plot-usage", "prompt-Router.c"} <= page.ids
    assert page.tags["svg"] == 2  # scores and usage: knn_fewshot scores no candidates
    text = " ".join(page.text)
    test = artifact["scores"]["test"]
    assert f"{100 * test['before']:.1f}%" in text and f"{100 * test['after']:.1f}%" in text
    assert "No trajectory: this pass scores no candidates" in text
    # the diff: the built prompt has the KNN demos the unoptimized one has not
    diff = re.search(r'<pre class="diff">(.*?)</pre>', html, re.S).group(1)
    assert '<span class="add">+Ticket: ' in diff and '<span class="add">+Category: ' in diff
    assert "4 demos picked per input from 40 stored examples" in text
    requests = artifact["passes"][0]["usage"]["lm_requests"]
    assert f"<td>1. knn_fewshot</td><td>{requests}</td>" in html
    n_test = len(artifact["examples"]["test"])
    assert f"test <small>({n_test} examples)</small>" in html
    assert external_references(html) == []


def test_the_mipro_report_plots_the_trajectory_and_the_instruction_change(
        mipro_report: Path) -> None:
    html = mipro_report.read_text(encoding="utf-8")
    page = _page(html)
    artifact = json.loads((mipro_report.parent / "Router.json").read_text())
    trajectory = artifact["passes"][0]["trajectory"]
    assert [t["label"] for t in trajectory][:2] == ["baseline", "trial 1"]
    assert len(trajectory) == 8  # the baseline and 7 trials
    assert [t["lm_requests"] for t in trajectory] == sorted(t["lm_requests"]
                                                            for t in trajectory)
    assert "plot-pass-1" in page.ids and page.tags["svg"] == 3
    svg = re.search(r'id="plot-pass-1">(.*?)</figure>', html, re.S).group(1)
    assert "best so far" in svg and "LM requests of mipro_v2" in svg
    text = " ".join(page.text)
    best = max(t["score"] for t in trajectory)
    assert f"8 scored candidates/trials; best {100 * best:.1f}%" in text
    # the instruction MIPROv2 chose is in the diff as a change of the objective line
    chosen = artifact["ir"]["predictors"]["Router.c"]["signature"]["instructions"]
    assert chosen.startswith("Route the ticket to its team, level")
    diff = re.search(r'<pre class="diff">(.*?)</pre>', html, re.S).group(1)
    assert f"+Your objective: {chosen}" in diff
    assert "-Your objective: Route a customer support ticket" in diff
    # wins and losses match the recorded per-example scores
    val = artifact["examples"]["val"]
    fixed = sum(1 for r in val if r["after"] > r["before"])
    broken = sum(1 for r in val if r["after"] < r["before"])
    assert fixed > 0
    assert f'<span class="up">{fixed} fixed</span> · <span class="down">{broken} broken' in html
    assert external_references(html) == []


def test_a_version_1_artifact_gets_notes_not_empty_plots(tmp_path: Path,
                                                         knn_report: Path) -> None:
    data = json.loads(knn_report.with_suffix(".json").read_text())
    data["schema_version"] = 1
    for key in ("examples", "baseline"):
        data.pop(key)
    for record in data["passes"]:
        record.pop("trajectory")
    old = tmp_path / "build" / "old.json"
    old.parent.mkdir()
    old.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["report", str(old)])
    assert result.exit_code == 0, result.output
    html = (tmp_path / "build" / "old.html").read_text()
    assert "records no per-example scores (schema 1)" in html
    assert "The unoptimized prompt is not recorded in this artifact (schema 1)" in html


def test_report_errors_are_one_line(tmp_path: Path) -> None:
    source = tmp_path / "x.lmp"
    source.write_text("enum A { b }\n")
    result = CliRunner().invoke(main, ["report", str(source)])
    assert result.exit_code == 1 and "reads a built artifact, not source" in result.output
    missing = CliRunner().invoke(main, ["report", str(tmp_path / "none.json")])
    assert missing.exit_code == 1 and "no such artifact" in missing.output


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, out: Path, height: int = 3200) -> Path:
    """Render ``page`` in headless Chromium with every host unresolvable (the page
    must need no network) and save a 1280-wide screenshot."""
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--window-size=1280,{height}",
         f"--screenshot={out}", page.resolve().as_uri()],
        check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                    "(Debian: apt-get install -y chromium); .ci/run installs it")
@pytest.mark.parametrize("which", ["knn", "mipro"])
def test_the_page_renders_in_headless_chromium(which: str, knn_report: Path,
                                               mipro_report: Path, tmp_path: Path) -> None:
    from PIL import Image

    page = knn_report if which == "knn" else mipro_report
    shot = screenshot(page, tmp_path / f"{which}.png")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 3200)
    # the plots' blue bars and the diff's green additions are on the page as drawn
    colors = image.getcolors(maxcolors=1 << 20) or []
    counts = {rgb: n for n, rgb in colors}
    assert counts.get((0x1f, 0x77, 0xb4), 0) > 2000  # matplotlib's blue, in the bars
    assert counts.get((0xe6, 0xff, 0xec), 0) > 2000  # the diff's added lines
    assert len(colors) > 100  # text, plots and tables, not a blank page
    dom = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                          "--host-resolver-rules=MAP * ~NOTFOUND", "--dump-dom",
                          page.resolve().as_uri()], check=True, capture_output=True,
                         text=True, timeout=120).stdout
    assert dom.count("<svg") == (2 if which == "knn" else 3)
    shutil.copy(shot, page.with_suffix(".png"))  # beside the page, for a person to look at
