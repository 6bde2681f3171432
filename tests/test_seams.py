"""The bugs that lived in the seams between the local and the server code (issue 'One house'):
each test failed before the two sides shared one implementation."""

from __future__ import annotations

import json

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import Notice, RawPrompt
from harness.chat.saved import saved_engine, session_state
from harness.chat.session import Session
from harness.chat.tree import Tree
from harness.generation.open import open_server_workbench, workbench_options
from harness.generation.profiles import default_profile
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.conversation import Conversation
from harness.prompt.templates import ChatTemplate, load_template
from tests.support.llama_server_stub import StubServer

SCRIPT = "Hi there, friend.<|im_end|>"


def _errors(events) -> list[str]:
    return [e.text for e in events if isinstance(e, Notice) and e.level == "error"]


def test_bias_by_id_and_by_text_works_on_a_server():
    """A server that reports no vocabulary size (n_vocab 0): an id must still be a valid bias."""
    with StubServer(SCRIPT, reports_vocab=False) as stub:
        bench = open_server_workbench(stub.url, None)
        assert bench.info.n_vocab == 0
        session = Session(bench, params=SamplingParams(temperature=0.0, max_tokens=5))
        events: list = []
        handle(session, "/bias #259 -5", events.append)
        handle(session, "/bias H -3", events.append)
        handle(session, "hello", events.append)
        sent = stub.model.requests[-1]["logit_bias"]
    assert _errors(events) == []
    assert session.params.logit_bias == {"#259": -5.0, "H": -3.0}
    assert [259, -5.0] in sent and len(sent) == 2


def test_raw_shows_the_tokens_generation_uses_with_literal_content():
    """/raw tokenizes as generation does: with literal content a control string in a message is
    plain text in both."""
    backend = FakeBackend("Ok<|im_end|>")
    bench = Workbench(backend, load_template("chatml"), literal_content=True)
    session = Session(bench, params=SamplingParams(temperature=0.0, max_tokens=3))
    session.trees.change(Tree.from_conversation(Conversation.of(("user", "a <|im_end|> b"))))
    events: list = []
    handle(session, "/raw", events.append)
    raw = next(e for e in events if isinstance(e, RawPrompt))
    plan = bench.plan(session.conversation)
    generated = bench.generate(plan, session.params)
    assert len(raw.pieces) == len(generated.prompt_tokens)
    assert [t[0] for t in raw.pieces] == [t.piece for t in generated.prompt_tokens]
    specials = [t for t in raw.pieces if t[2]]
    assert all(t[1] == "template" for t in specials)  # no control token comes from content


def _chatml_with_close(close: str) -> ChatTemplate:
    source = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}" + close + "\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return ChatTemplate(f"close-{close}", source, "test")


def test_end_of_generation_ids_follow_the_template_on_a_server():
    """Switching templates on a server learns the new close marker and forgets the old one."""
    specials = ("<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|turn_a|>", "<|turn_b|>")
    a, b = 256 + specials.index("<|turn_a|>"), 256 + specials.index("<|turn_b|>")
    with StubServer(SCRIPT, specials=specials) as stub:
        bench = open_server_workbench(stub.url, "chatml")
        first = bench.eog_ids
        bench.set_template(_chatml_with_close("<|turn_a|>"))
        with_a = bench.eog_ids
        bench.set_template(_chatml_with_close("<|turn_b|>"))
        with_b = bench.eog_ids
        bench.set_template(load_template("chatml"))
        again = bench.eog_ids
        bench.close()
    assert a not in first and b not in first
    assert a in with_a and a not in with_b and b in with_b
    assert again == first


def test_a_server_session_resumes_with_its_backend_variables_and_policies(tmp_path):
    with StubServer(SCRIPT) as stub:
        bench = open_server_workbench(stub.url, "chatml", {"who": "tester"})
        session = Session(bench, context_overflow="truncate-oldest", template_spec="chatml")
        state = json.loads(json.dumps(session_state(session)))
        bench.close()
    options = workbench_options({}, default_profile(), saved_engine(state))
    assert options["backend"] == stub.url and options["model"] is None
    assert options["variables"]["who"] == "tester"
    assert options["template"] == "chatml"
    assert saved_engine(state)["context_overflow"] == "truncate-oldest"


def test_a_local_session_saves_literal_content():
    bench = Workbench(FakeBackend("Ok<|im_end|>"), load_template("chatml"), {"x": 1}, literal_content=True)
    state = json.loads(json.dumps(session_state(Session(bench))))
    engine = saved_engine(state)
    assert engine["literal_content"] is True and engine["variables"] == {"x": 1} and engine["backend"] is None
    assert workbench_options({}, default_profile(), engine)["literal_content"] is True
