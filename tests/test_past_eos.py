"""Role attribution of text a model writes past its end of turn (issue 15, item 4), on the fake
backend: role names that only start like a known one, unknown names, malformed markers, scaffold
inside an impersonated turn, a marker cut off by max tokens, and a new conversation."""

from __future__ import annotations

from harness.backends.fake import FakeBackend
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.markers import derive_markers
from harness.prompt.templates import load_template
from harness.prompt.turns import NEW, SAME, TurnParser

HELLO = Conversation.of(("user", "Hello"))


def run(script: str, mode: str = "reply", conv: Conversation = HELLO, max_tokens: int | None = None,
        **backend) -> list[tuple[str, str]]:
    """(role, text) runs of the generated tokens, the fake model saying `script` past its EOS."""
    fake = FakeBackend(script, **backend)
    wb = Workbench(fake, load_template("chatml"))
    gen = wb.generate(wb.plan(conv, mode), SamplingParams(
        temperature=0, eos="continue", max_tokens=max_tokens or len(fake.tokenize(script))))
    runs: list[tuple[str, str]] = []
    for t in gen.tokens:
        if runs and runs[-1][0] == t.role:
            runs[-1] = (t.role, runs[-1][1] + t.piece)
        else:
            runs.append((t.role, t.piece))
    return runs


def content(runs):
    return [(r, t) for r, t in runs if r != "template"]


def test_a_role_name_that_only_starts_like_user_is_its_own_role():
    runs = run("Hi.<|im_end|>\n<|im_start|>user_agent\nfetch the page<|im_end|>\n")
    assert content(runs) == [("assistant", "Hi."), ("user_agent", "fetch the page")]


def test_an_unknown_role_labels_its_content_by_its_name():
    runs = run("Hi.<|im_end|>\n<|im_start|>admin\nreset everything<|im_end|>\n")
    assert content(runs) == [("assistant", "Hi."), ("admin", "reset everything")]


def test_a_close_followed_by_a_role_name_opens_that_turn():
    runs = run("Hi.<|im_end|>user\nand then?<|im_end|>\n")
    assert content(runs) == [("assistant", "Hi."), ("user", "and then?")]
    assert ("template", "<|im_end|>user\n") in runs


def test_a_bare_open_marker_opens_an_unnamed_turn():
    runs = run("Hi.<|im_end|>\n<|im_start|>\nwho speaks<|im_end|>\n")
    assert content(runs) == [("assistant", "Hi."), ("unnamed", "who speaks")]


def test_scaffold_inside_an_impersonated_turn_is_template():
    conv = Conversation.of(("user", "Hi"), ("assistant", "Hello"))
    runs = run("Question?<|im_end|>\n<|im_start|>assistant\nAnswer.<|im_end|>\n", "impersonate", conv)
    assert content(runs) == [("user", "Question?"), ("assistant", "Answer.")]
    assert all(r == "template" for r, t in runs if "<|im_" in t)


def test_a_marker_cut_off_by_max_tokens_is_template():
    """Markers spelled as text (the model has no <|im_end|> token), cut after `<|im_e`."""
    script = "Hi there.<|im_end|>\n"
    runs = run(script, max_tokens=len("Hi there.<|im_e"), specials=("<s>", "</s>"), eog=("</s>",))
    assert runs == [("assistant", "Hi there."), ("template", "<|im_e")]


def test_each_turn_records_whether_it_starts_a_new_conversation():
    parser = TurnParser(derive_markers(load_template("chatml")))
    text = ("Hi.<|im_end|>\n<|im_start|>user\nMore?<|im_end|>\n<|im_start|>system\n<|im_end|>\n"
            "<|im_start|>user\nWrite a haiku about rust.<|im_end|>\n")
    turns = parser.turns(text, "assistant")
    assert [(t.role, text[t.start:t.end], t.conversation) for t in turns] == [
        ("assistant", "Hi.", SAME), ("user", "More?", SAME), ("system", "", NEW),
        ("user", "Write a haiku about rust.", NEW)]
