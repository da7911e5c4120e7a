"""A served model whose replies cannot be read never passes: each is no answer, counted and gated.

Three OpenAI-compatible servers on the loopback (``fake_openai.on_loopback``), each giving
replies vlmgate cannot read on one tier: an answer that names no option, a first token
whose top log-probs hold none of the options' first tokens, and a response with an empty
``choices`` list. Before, each read as option A: flip rates 0, and the gates passed.
"""

from __future__ import annotations

import html
import json
from xml.etree import ElementTree

import pytest

from vlmgate.models.served.tiers import NAMES_NO_OPTION, NO_CHOICES, NO_OPTION_IN_TOP_K

from fake_openai import FakeServer, on_loopback
from support import FLIP_TEST

SELECT = ("-k", "clean or translation")

UNREADABLE = {
    "reply naming no option": (FakeServer(vllm=False, logprobs=False, reply="I cannot tell from this picture."),
                               "tier=answer", NAMES_NO_OPTION, "I cannot tell from this picture."),
    "no option in the top log-probs": (FakeServer(vllm=False, top_tokens=("I", "The")),
                                       "tier=first_token&top_logprobs=2", NO_OPTION_IN_TOP_K, "'I' 'The'"),
    "empty choices": (FakeServer(vllm=False, logprobs=False, empty_choices=True), "tier=answer", NO_CHOICES, ""),
}


def _run(pytester: pytest.Pytester, server: FakeServer, query: str, manifest) -> tuple[int, str, dict]:
    pytester.makepyfile(test_flip_rate=FLIP_TEST)
    with on_loopback(server) as url:
        result = pytester.runpytest_inprocess(
            "-p", "no:cacheprovider", f"--vlmgate-model=openai:{url}?model={server.name}&{query}",
            f"--vlmgate-benchmark=jsonl:{manifest}", "--vlmgate-report=report", "--junitxml=junit.xml", *SELECT)
    output = "\n".join([*result.outlines, *result.errlines])
    return int(result.ret), output, json.loads((pytester.path / "report" / "run.json").read_text())


@pytest.mark.parametrize("fault", list(UNREADABLE))
def test_unreadable_served_replies_are_no_answer_and_fail_the_unanswered_gate(pytester, manifest, fault):
    server, query, why, said = UNREADABLE[fault]
    code, output, record = _run(pytester, server, query, manifest)
    assert code == 1, output
    assert "NO-GO" in output and "Traceback" not in output
    cases = record["cases"]
    assert cases and not [c["id"] for c in cases if c["outcome"] == "passed"]
    for case in cases:
        metrics = {m["name"]: m for m in case["metrics"]}
        unanswered = metrics["unanswered_rate"]
        details = unanswered["details"]
        assert unanswered["value"] == 1.0 and unanswered["outcome"] == "fail", case["id"]
        assert details["unanswered"] == details["inputs"] > 0
        assert details["examples"][0]["why"] == why and details["examples"][0]["said"] == said
    accuracy = next(m for c in cases for m in c["metrics"] if m["name"] == "accuracy")
    assert accuracy["value"] == 0.0  # no answer is wrong, never option A
    ifr = next(m for c in cases for m in c["metrics"] if m["name"] == "ifr")
    assert ifr["value"] == 1.0  # an instance without an answer is a flip
    assert "got no readable answer" in output and why in output  # the terminal says how many and why
    assert "vlmgate: inputs without a readable answer" in output and "63 of 63 inputs (fail" in output
    junit = ElementTree.parse(pytester.path / "junit.xml").getroot()
    for testcase in junit.iter("testcase"):  # the count and the examples, for a dashboard that reads JUnit
        props = {p.get("name"): p.get("value") for p in testcase.iter("property")}
        assert props["vlmgate.unanswered_rate.count"] == props["vlmgate.unanswered_rate.n"] != "0"
        assert why in props["vlmgate.unanswered_rate.explanation"]
    failures = html.unescape((pytester.path / "report" / "report.html").read_text().split('<section id="failures">')[1])
    assert "inputs got no readable answer" in failures and why in failures  # the report lists them too


def test_only_the_replies_that_cannot_be_read_are_counted(pytester, manifest):
    """"B" answers every 4-option item and names no option of the yes/no item ``p0``."""
    code, output, record = _run(pytester, FakeServer(vllm=False, logprobs=False, reply="B"), "tier=answer", manifest)
    assert code == 1, output  # 1 input in 7 unanswered is past the limit of 1 in 20
    assert "1 of 7 inputs (fail, limit max 0.05 (strict))" in output  # the clean case, in the terminal section
    for case in record["cases"]:
        metrics = {m["name"]: m for m in case["metrics"]}
        unanswered = metrics["unanswered_rate"]
        missing = {unit for unit, value in unanswered["units"].items() if value}
        assert missing and {unit.split("|")[0] for unit in missing} == {"p0"}, case["id"]
        assert unanswered["details"]["unanswered"] == len(missing)
        assert len(missing) * 7 == unanswered["details"]["inputs"]  # one sample in seven, every one of its inputs
        if "ifr" in metrics:  # the 4-option items keep "B" under every shift; p0's instances all count as flips
            flipped = {unit for unit, value in metrics["ifr"]["units"].items() if value}
            assert flipped and {unit.split("|")[0] for unit in flipped} == {"p0"}
        if "accuracy" in metrics:  # s1 and s5 are green (B); p0 has no answer, so it is wrong
            assert metrics["accuracy"]["value"] == 2 / 7


def test_the_record_says_how_many_replies_reasoned_and_for_how_long(pytester, manifest):
    """A reasoning model's span is cut off before its reply is read, and each case's record says so."""
    thinking = "<think>Red or green? The shape looks green.</think>"
    code, output, record = _run(pytester, FakeServer(vllm=False, logprobs=False, reply=f"{thinking} B"),
                                "tier=answer&answer_tokens=256", manifest)
    for case in record["cases"]:
        details = {m["name"]: m for m in case["metrics"]}["unanswered_rate"]["details"]
        reasoning = details["reasoning"]
        assert reasoning["delimiters"] == "<think>…</think>" and reasoning["stripped"] == details["inputs"] > 0
        assert reasoning["mean_chars"] == reasoning["max_chars"] == len(thinking)
        assert any("replies reasoned before answering" in line for line in details["explanation"])
        if case["key"]["family"] == "clean":  # "B" read after the span: s1 and s5 are green
            assert {m["name"]: m for m in case["metrics"]}["accuracy"]["value"] == 2 / 7
