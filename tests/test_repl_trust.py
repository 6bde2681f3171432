"""What the REPL shows is what the model sees (issue 14): each numbered bug driven through pipe
input on the fake backend, asserting on the autosaved session and the rendered prompt."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.data_structures import Size
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.output.vt100 import Vt100_Output

from harness.backends.fake import FakeBackend
from harness.chat.dispatch import handle
from harness.chat.events import Alternatives, Notice, RawPrompt, TurnStarted
from harness.chat.saved import SessionFile, restore, session_state
from harness.chat.session import Session
from harness.chat.session_io import SessionIO
from harness.generation.settings import SamplingParams
from harness.generation.workbench import Workbench
from harness.prompt.templates import load_template
from harness.repl.display import Display
from harness.repl.prefs import repl_prefs
from tests.support.replkit import drive


def session_on(script: str = "Hi!<|im_end|>", template: str = "gguf", tmp_path=None, loader=None,
               settings=None, trees=None, transcript=None, **params) -> Session:
    backend = FakeBackend(script)
    bench = Workbench(backend, load_template(template, embedded=backend.info.chat_template))
    sampling = {"temperature": 0, "max_tokens": 20, **params}
    autosave = SessionFile("s", tmp_path / "s.json") if tmp_path is not None else None
    return Session(bench, params=SamplingParams(**sampling), loader=loader, settings=settings, trees=trees,
                   transcript=transcript, prefs=repl_prefs(), io=SessionIO(autosave=autosave))


def saved(tmp_path) -> dict:
    return json.loads((tmp_path / "s.json").read_text())


def raw_prompt(session: Session) -> str:
    seen: list = []
    handle(session, "/raw", seen.append)
    return next(e for e in seen if isinstance(e, RawPrompt)).prompt


def notices(recorder, level: str | None = None) -> list[str]:
    return [e.text for e in recorder.of(Notice) if level is None or e.level == level]


# 1 -----------------------------------------------------------------------------------------------
def test_continue_keeps_the_continued_message_once_in_the_save_the_prompt_and_a_retry(tmp_path):
    session = session_on("Hi! How are you today", tmp_path=tmp_path, max_tokens=4)
    drive(session, "Name three fruits.\r/continue\r")
    assert saved(tmp_path)["messages"][-1] == {"role": "assistant", "content": "Hi! How "}
    assert "Hi! Hi!" not in raw_prompt(session) and "Hi! How <|im_end|>" in raw_prompt(session)
    drive(session, "/retry same\r")
    assert saved(tmp_path)["messages"][-1]["content"] == "Hi! How "


# 2 -----------------------------------------------------------------------------------------------
def test_negative_seeds_are_refused_and_minus_one_is_random(tmp_path):
    session = session_on(tmp_path=tmp_path, seed=7)
    recorder = drive(session, "/set seed -5\r/set seed -1\rHello\r")
    assert any("seed" in t for t in notices(recorder, "error"))
    assert session.params.seed is None and saved(tmp_path)["settings"]["seed"] is None
    assert "seed = random" in notices(recorder)
    assert session.conversation.messages[-1].content == "Hi!"


def test_a_saved_session_with_a_bad_seed_resumes_with_a_warning(tmp_path):
    session = session_on(tmp_path=tmp_path)
    drive(session, "Hello\r")
    state = saved(tmp_path)
    state["settings"]["seed"] = -5
    restored = restore(state)
    fresh = session_on(settings=restored.settings, trees=restored.trees, transcript=restored.transcript)
    assert fresh.params.seed is None and any("seed" in n for n in restored.notes)
    drive(fresh, "Again\r")
    assert fresh.conversation.messages[-1].content == "Hi!"


def test_generate_refuses_a_negative_seed_without_a_traceback(tmp_path):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    run = subprocess.run([sys.executable, "-m", "harness", "generate", "--messages", str(messages),
                          "--seed", "-5"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "seed" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.model
def test_generate_takes_seed_minus_one_as_random(tmp_path):
    messages = tmp_path / "m.json"
    messages.write_text('[{"role": "user", "content": "hi"}]')
    run = subprocess.run([sys.executable, "-m", "harness", "generate", "--messages", str(messages),
                          "--seed", "-1", "--max-tokens", "3", "--threads", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip(), run.stderr


# 3 -----------------------------------------------------------------------------------------------
def test_alts_and_branch_follow_the_newest_turn_after_tokens(tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, "Hello\r/tokens\rAgain\r/alts 0\r/branch 0 2\r")
    assert recorder.of(Alternatives)[-1].message == 3
    state = saved(tmp_path)
    assert [m["content"] for m in state["messages"]][:3] == ["Hello", "Hi!", "Again"]
    assert len(state["messages"]) == 4  # the branch is a candidate of message 3, nothing hidden
    assert len(session.tree.siblings(3)) == 2


def test_a_branch_of_an_earlier_message_says_the_later_ones_stay_behind(tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, "Hello\rAgain\r/tokens 1\r/branch 0 2\r")
    assert any("stay with the old one" in t for t in notices(recorder, "warning"))
    drive(session, "/swipe 1 --at 1\r")
    assert [m["content"] for m in saved(tmp_path)["messages"]] == ["Hello", "Hi!", "Again", "Hi!"]


# 4 -----------------------------------------------------------------------------------------------
def test_the_prompt_label_returns_to_user_after_an_edit(monkeypatch):
    labels: list[str] = []
    original = PromptSession.prompt

    def spy(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        finally:
            labels.append("".join(text for _, text in self.message))

    monkeypatch.setattr(PromptSession, "prompt", spy)
    session = session_on()
    drive(session, "Hello\r/edit 0\r changed\r/messages\r")
    assert labels[2] == "edit 0> "
    assert labels[3:] and all(label == "user> " for label in labels[3:])
    assert session.conversation.messages[0].content == "Hello changed"


# 5 -----------------------------------------------------------------------------------------------
def test_bare_commands_show_and_change_nothing(tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, '/system Be kind.\rHello\r/set stop ["x y"]\r/system\r/template\r/set stop\r')
    state = saved(tmp_path)
    assert state["messages"][0] == {"role": "system", "content": "Be kind."}
    assert session.params.stop == ("x y",) and session.bench.template.name.endswith("gguf")
    shown = notices(recorder)
    assert "system prompt: 'Be kind.'" in shown and 'stop = ["x y"]' in shown
    assert any(t.startswith("template: ") for t in shown)
    drive(session, "/system --clear\r/set stop none\r")
    assert saved(tmp_path)["messages"][0]["role"] == "user" and session.params.stop == ()
    assert "<|im_start|>system" not in raw_prompt(session)


# 6 -----------------------------------------------------------------------------------------------
def _escape(style: str, depth: ColorDepth) -> str:
    out = io.StringIO()
    output = Vt100_Output(out, lambda: Size(24, 80), term="xterm-256color", default_color_depth=depth)
    print_formatted_text(FormattedText([(style, "x")]), output=output, end="")
    return out.getvalue().split("x")[0]


@pytest.mark.parametrize("depth", list(ColorDepth))
def test_entropy_shades_stay_distinct_at_every_colour_depth_and_the_legend_names_them(depth):
    from harness.repl.display import PALETTES, legend, shade

    styles = [shade(bits, depth) for bits in (0.5, 2.0, 3.0, 5.0)]
    escapes = [_escape(style, depth) for style in styles]
    assert len(set(escapes)) == 4, escapes  # plain and three shades, all apart as drawn
    names = [name for name, _ in PALETTES[depth]]
    assert legend(depth) == f"plain < 1 bit < {names[0]} < 2.5 < {names[1]} < 4 < {names[2]}"


def test_the_display_draws_with_the_depth_of_its_terminal(monkeypatch):
    monkeypatch.setenv("PROMPT_TOOLKIT_COLOR_DEPTH", "DEPTH_4_BIT")
    assert Display().depth == ColorDepth.DEPTH_4_BIT


# 7 -----------------------------------------------------------------------------------------------
def test_eos_stop_under_raw_ends_the_turn_where_the_next_role_opens(tmp_path):
    session = session_on("I think so.\n\nAssistant: yes indeed, and on and on it goes",
                         template="raw", tmp_path=tmp_path, max_tokens=60)
    session.trees.change(session.tree.from_conversation(
        session.conversation.__class__.from_dicts([{"role": "user", "content": "Hello"},
                                                   {"role": "assistant", "content": "Hi"}])))
    drive(session, "/impersonate\r")
    gen = session.transcript[-1]
    assert gen.stop_reason == "end_of_turn" and "indeed" not in gen.text
    assert saved(tmp_path)["messages"][-1] == {"role": "user", "content": "I think so."}


# 8 -----------------------------------------------------------------------------------------------
class Printed(Display):
    def __init__(self) -> None:
        super().__init__(None, {"shade": False})
        self.fragments: list[tuple[str, str]] = []

    def _print(self, fragments, end: str = "") -> None:
        self.fragments += list(fragments)


def test_the_live_view_shows_prefill_and_impersonate_text_marked_as_given(tmp_path):
    session = session_on(" here it is<|im_end|>", tmp_path=tmp_path)
    recorder = drive(session, "Hello\r/prefill Sure,\r/impersonate I think\r")
    started = recorder.of(TurnStarted)
    assert [s.given for s in started] == ["", "Sure,", "I think"]
    shown = Printed()
    shown.emit(started[1])
    assert ("ansibrightcyan italic underline" in [f[0] for f in shown.fragments]
            or any(text == "Sure," and "italic" in style for style, text in shown.fragments))
    assert saved(tmp_path)["messages"][2]["content"].startswith("Sure,")


# 9 -----------------------------------------------------------------------------------------------
def test_retry_under_a_fixed_seed_gives_new_candidates_and_says_the_seed(tmp_path):
    session = session_on("", tmp_path=tmp_path, temperature=1.5, top_k=0, top_p=1.0, min_p=0.0,
                         seed=3, max_tokens=8)
    recorder = drive(session, "Hello\r/retry\r/swipe next\r")
    candidates = [session.tree.nodes[i].message.content for i in session.tree.siblings(1)]
    assert len(candidates) == 3 and len(set(candidates)) == 3
    assert any("seed 3 -> 4" in t for t in notices(recorder))
    drive(session, "/swipe 1\r/retry same\r")
    assert session.conversation.messages[1].content == candidates[0]
    assert session.params.seed == 3


# 10 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ('"hello world" 5', ["hello world", "5"]),
    ("'<|im_end|>' -inf", ["<|im_end|>", "-inf"]),
    ('""', [""]),
    (r"a\ b c", ["a b", "c"]),
    ('x "a \\"q\\"" y', ["x", 'a "q"', "y"]),
])
def test_one_shell_like_parser(text, words):
    from harness.chat.slash import split_words

    assert split_words(text) == words


@pytest.mark.parametrize("text, count, expected", [
    ("2 user I'm here", 2, (["2", "user"], "I'm here")),
    ('1 "  two spaces"', 1, (["1"], "  two spaces")),
    ('"quoted" and more', 0, ([], '"quoted" and more')),
])
def test_free_text_after_the_words_is_verbatim_unless_one_quoted_word(text, count, expected):
    from harness.chat.slash import take_words

    assert take_words(text, count) == expected


def test_bias_lists_adds_quoted_removes_and_clears(tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, '/bias "<|im_end|>" -5\r/bias A 2\r/bias\r/bias A off\r')
    assert session.params.logit_bias == {"<|im_end|>": -5.0}
    assert 'logit biases: "<|im_end|>"=-5 "A"=2' in notices(recorder)
    drive(session, "/bias off\r")
    assert session.params.logit_bias == {} and not notices(drive(session, "/bias\r"), "error")


def test_quotes_mean_the_same_in_every_command(tmp_path):
    session = session_on(tmp_path=tmp_path)
    drive(session, '/system "Be  terse."\rHello\r/insert 1 user "two  spaces"\r/system ""\r')
    assert [m["content"] for m in saved(tmp_path)["messages"]][:2] == ["two  spaces", "Hello"]
    drive(session, '/system Don\'t "quote" me\r')
    assert session.conversation.messages[0].content == 'Don\'t "quote" me'


def test_commands_take_unique_prefixes_aliases_and_suggest_a_near_name():
    session = session_on()
    recorder = drive(session, "Hello\r/mess\r/swpie\r/s\r")
    errors = notices(recorder, "error")
    assert any("did you mean /swipe" in t for t in errors)
    assert any("ambiguous" in t for t in errors)
    for word in ("/exit", "/q"):
        assert notices(drive(session, f"{word}\rNot sent\r"), "error") == []
    assert len(session.conversation) == 2


# 11 ----------------------------------------------------------------------------------------------
def test_a_model_without_a_chat_template_is_refused_before_loading(tmp_path):
    from tests.support.gguf_writer import STR, gguf, kv, write

    model = write(tmp_path, gguf([kv("general.architecture", STR, "tiny")]), "base.gguf")
    calls: list = []
    session = session_on(loader=lambda *args, **kwargs: calls.append(args))
    recorder = drive(session, f"/model {model}\r")
    assert calls == []
    assert any(f"/model {model} raw" in t for t in notices(recorder, "error"))


# 12 ----------------------------------------------------------------------------------------------
def test_a_log_resumes_with_its_own_model_and_template(tmp_path):
    from harness.repl.chat import _log_engine

    model = tmp_path / "gemma-3-270m-q4_k_m.gguf"
    model.write_bytes(b"GGUF")
    turn = {"model": "gemma-3-270m-q4_k_m", "model_path": str(model), "template": "raw",
            "template_spec": None, "model_spec": None}
    assert _log_engine(turn) == {"model": str(model), "template": "raw", "backend": None}


def test_the_log_names_the_model_file(tmp_path):
    from harness.turn_log import TurnLog, read_log

    session = session_on()
    session.io.attach_log(TurnLog(tmp_path / "log.jsonl"))
    drive(session, "Hello\r")
    session.io.log.close()
    assert list(read_log(tmp_path / "log.jsonl"))[-1]["model_path"] == "<fake>"


# 13 ----------------------------------------------------------------------------------------------
CHAT = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


def test_a_template_that_fails_lint_is_refused(tmp_path):
    long_fails = tmp_path / "long.jinja"
    long_fails.write_text(CHAT + "{% if messages|length > 2 %}{{ raise_exception('too long') }}{% endif %}")
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, f"Hello\r/template {long_fails}\r")
    assert any("L001" in t for t in notices(recorder, "error"))
    assert session.bench.template.name.endswith("gguf")


def test_a_failed_turn_leaves_the_conversation_as_it_was(tmp_path):
    picky = tmp_path / "picky.jinja"
    picky.write_text("{% for m in messages %}{% if 'boom' in m['content'] %}{{ raise_exception('no boom') }}"
                     "{% endif %}{% endfor %}" + CHAT)
    session = session_on(tmp_path=tmp_path)
    drive(session, f"Hello\r/template {picky}\r")
    before = saved(tmp_path)["messages"]
    recorder = drive(session, "boom\r")
    assert any("no boom" in t for t in notices(recorder, "error"))
    assert saved(tmp_path)["messages"] == before
    assert "boom" not in json.dumps(session_state(session)["tree"])
    drive(session, "/undo\r")
    assert [m.content for m in session.conversation] == ["Hello"]  # the reply was the last change


def test_a_template_that_never_stops_is_taken_with_a_warning(tmp_path):
    session = session_on()
    recorder = drive(session, "/template gemma\r")
    assert session.bench.template.name == "gemma"
    assert any("L003" in t for t in notices(recorder, "warning"))


# 14 is a terminal matter: tests/test_tmux.py::test_keys_typed_while_streaming_wait_for_the_next_prompt
def test_typed_keys_are_cleaned_for_the_prompt():
    from harness.repl.typeahead import clean, next_input

    assert clean("/tok\x1b[Dens\r") == "/tokens"[:4] + "ens\n"
    assert clean("ab\x7fc\x03") == "abc"
    assert next_input("Hi\n/tokens\nsecond") == ("Hi", True, "/tokens\nsecond")
    assert next_input("half a line") == ("half a line", False, "")


def test_the_docs_document_every_command_with_its_example():
    from pathlib import Path

    from harness.chat.slash import COMMANDS

    page = (Path(__file__).resolve().parent.parent / "docs" / "repl.md").read_text()
    section = page.replace("\\|", "|")
    for command in COMMANDS:
        assert f"`/{command.name}" in section, command.name
        assert command.example and f"`{command.example}`" in section, command.name


# -- the missing features ---------------------------------------------------------------------------
def test_adopt_makes_the_user_turn_the_model_wrote_the_next_message(tmp_path):
    from harness.chat.events import TurnFinished

    session = session_on("Hi!<|im_end|>\n<|im_start|>user\nMore please<|im_end|>", tmp_path=tmp_path,
                         eos="continue", max_tokens=40)
    recorder = drive(session, "Hello\r/adopt\r")
    assert "only the assistant turn was kept" in recorder.of(TurnFinished)[0].kept
    assert saved(tmp_path)["messages"] == [{"role": "user", "content": "Hello"},
                                          {"role": "assistant", "content": "Hi!"},
                                          {"role": "user", "content": "More please"}]
    assert raw_prompt(session).endswith("<|im_start|>user\nMore please<|im_end|>\n<|im_start|>assistant\n")
    assert notices(drive(session, "/adopt\r"), "error")  # once only


def test_new_show_and_help_set(tmp_path):
    from harness.chat.events import MessageShown

    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, "Hello\r/show 1\r/help set\r/new\r")
    assert recorder.of(MessageShown)[0].row.content == "Hi!"
    assert any("context_overflow" in t and "literal_content" in t for t in notices(recorder))
    assert saved(tmp_path)["messages"] == [] and session.params.max_tokens == 20
    drive(session, "/undo\r")
    assert len(session.conversation) == 2


def test_set_engine_keys_do_what_the_hints_say(tmp_path):
    calls: list = []

    def loader(model, template, **changes):
        calls.append(changes)
        backend = FakeBackend("Hi!<|im_end|>", n_ctx=changes.get("n_ctx", 4096))
        return Workbench(backend, load_template("gguf", embedded=backend.info.chat_template))

    session = session_on(tmp_path=tmp_path, loader=loader)
    recorder = drive(session, "/set literal_content on\r/set context_overflow truncate-oldest\r"
                     "/set n_ctx 1024\r/set threads 2\r/set\r")
    assert session.bench.literal_content and session.settings.context_overflow == "truncate-oldest"
    assert calls == [{"n_ctx": 1024}, {"n_ctx": 1024, "threads": 2}] and session.bench.info.n_ctx == 1024
    table = next(t for t in notices(recorder) if t.startswith("model")).splitlines()[:-1]
    rows = {line.split()[0]: line.split(None, 1)[1] for line in table}
    assert rows["literal_content"] == "on" and rows["seed"] == "random" and rows["n_ctx"] == "1024"
    assert len({len(line) - len(line.split(None, 1)[1]) for line in table}) == 1  # aligned


def test_split_utf8_tokens_are_shown_by_their_bytes_and_alts_shows_the_sampled_token():
    from harness.chat.events import TokenView

    session = session_on("Olé!<|im_end|>")
    recorder = drive(session, "Hello\r/tokens\r/alts 2\r")
    pieces = [row.piece for row in recorder.of(TokenView)[0].rows]
    assert pieces[:4] == ["O", "l", "\\xc3", "\\xa9"]
    alts = recorder.of(Alternatives)[0]
    assert alts.came == "\\xc3" and alts.came_probability is not None


def test_the_injection_warning_names_the_message_once(tmp_path):
    session = session_on(tmp_path=tmp_path)
    recorder = drive(session, "Say <|im_end|> please\rAgain\r")
    warnings = [t for t in notices(recorder, "warning") if "control token" in t]
    assert len(warnings) == 1 and warnings[0].startswith("message 0 (user)")


def test_a_long_prompt_gets_a_progress_line():
    session = session_on()
    recorder = drive(session, "x" * 300 + "\rshort\r")
    progress = [t for t in notices(recorder) if t.startswith("evaluating")]
    assert len(progress) == 1 and "prompt tokens" in progress[0]
