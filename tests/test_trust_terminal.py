"""Issue 13, class 3: untrusted text never reaches the terminal raw. A template's output and its
`raise_exception` message, a server's error text and token texts, and REPL output show control
characters visibly; a pipe and --json keep the exact bytes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from harness.cli.main import main
from harness.untrusted import visible, visible_line
from tests.support.hostile_server import Hostile, Serve

ESCAPES = ["\x1b]0;pwned\x07", "\x1b[2J", "\x9b31m", "\x08\x08\x08", "\x07"]


@pytest.mark.parametrize("raw", ESCAPES)
def test_visible_leaves_no_control_character(raw):
    shown = visible(raw + "ok\n")
    assert shown.endswith("ok\n")
    assert not any(ord(c) < 0x20 and c not in "\n\t" or 0x7f <= ord(c) <= 0x9f for c in shown)
    assert "\n" not in visible_line("a\nharness: all good")


def _messages(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('[{"role": "user", "content": "hi"}]')
    return str(path)


def test_raise_exception_cannot_fake_a_line_or_retitle_the_terminal(tmp_path, capsys):
    template = tmp_path / "evil.jinja"
    template.write_text('{{ raise_exception("\\x1b]0;pwned\\x07\\x1b[2K\\rharness: all good\\nok") }}')
    code = main(["render", "--template", str(template), "--messages", _messages(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert "\x1b" not in err and "\x07" not in err and "\r" not in err and "␛]0;pwned␇" in err


def test_render_show_is_visible_but_a_pipe_gets_the_bytes(tmp_path, capsys):
    template = tmp_path / "esc.jinja"
    template.write_text('{% for m in messages %}\x1b]0;x\x07{{ m.content }}\x9b{% endfor %}')
    assert main(["render", "--template", str(template), "--messages", _messages(tmp_path), "--show"]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\x9b" not in shown and "␛]0;x␇hi\\x9b" in shown
    assert main(["render", "--template", str(template), "--messages", _messages(tmp_path)]) == 0
    assert capsys.readouterr().out == "\x1b]0;x\x07hi\x9b"  # exact where exact is the contract


class EscapingServer(Hostile):
    def completion(self):
        self.event(self.token("\x1b]0;owned\x07"))
        self.event(self.token("\x9b2J"))
        self.event({"choices": [{"text": "", "finish_reason": "length"}]})


def test_server_token_texts_on_a_terminal_are_visible(tmp_path, capsys, monkeypatch):
    with Serve(EscapingServer) as server:
        args = ["generate", "--backend", f"openai+{server.url}", "--template", "chatml",
                "--messages", _messages(tmp_path), "--max-tokens", "5"]
        monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x9b" not in out and "␛]0;owned␇" in out
        monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
        assert main([*args, "--json"]) == 0
        assert "\x1b]0;owned\x07" in json.loads(capsys.readouterr().out)["text"]


class ErrorServer(Hostile):
    def models(self):
        self._json({"error": {"message": "\x1b[2K\rharness: all good \x1b]0;x\x07"}}, 500)


def test_a_server_error_text_is_shown_not_obeyed(tmp_path, capsys):
    with Serve(ErrorServer) as server:
        code = main(["generate", "--backend", f"openai+{server.url}", "--template", "chatml",
                     "--messages", _messages(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1
    assert "\x1b" not in err and "\r" not in err and "from the server: ␛[2K" in err


def test_the_repl_display_never_writes_a_raw_control():
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.output.vt100 import Vt100_Output

    from harness.chat.events import Notice

    buffer = io.StringIO()
    from harness.repl.display import Display

    display = Display(output=Vt100_Output(buffer, lambda: Size(24, 80), term="xterm"))
    display.emit(Notice("a\x9b31mb\x07c\x08d"))
    written = buffer.getvalue()
    assert "\x9b" not in written and "\x07" not in written and "\x08" not in written
    assert "a\\x9b31mb␇c␈d" in written


@pytest.mark.model
def test_a_llama_cpp_error_naming_a_hostile_architecture_is_shown_once_and_visibly(tmp_path, capsys):
    from harness.models.registry import resolve_model

    _, path = resolve_model("smollm2")
    data = bytearray(path.read_bytes())
    at = data.find(b"general.architecture\x08\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00llama")
    assert at >= 0
    data[at + 32:at + 37] = b"\x1b]0;x"  # same length: the header stays well-formed
    evil = tmp_path / "evil.gguf"
    evil.write_bytes(bytes(data))
    code = main(["generate", "--model", str(evil), "--template", "chatml", "--messages", _messages(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1, err
    assert "\x1b" not in err and "␛]0;x" in err
    assert err.count("could not load the model") == 1
