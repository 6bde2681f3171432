"""The second red team's classes (issue 26), run as hostile cases and as growth measurements.

Cases: each runs harness in a child on a pseudo-terminal (so harness believes it writes to a
terminal), with the fake model, 1.5 GiB of address space and 60 s; counted as in
stress_files.py (tracebacks, timeouts, exits other than 0 or a one-line error, the child's peak
RSS), plus raw control characters anywhere in what reached the terminal (ESC, BEL, C1 CSI).
Classes: terminal output, sentinel-shaped data, files (special files, sizes, folders, items),
sizes declared up front (a sweep's matrix, a sparse GGUF vocabulary, a report of a huge turn),
hostile server values, bias values, and work that must stay linear (60,000 think blocks).

Growth: each input that once cost quadratic time is timed at n and 10 n in this process; the
ratio should be near 10 (linear), not 100.

    python bench/stress_files.py --classes      (about 3 minutes)
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILD_LIMIT = 3 * 2**29  # 1.5 GiB of address space per child
CASE_SECONDS = 60
ESC = "\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m"
LONG_SENTINEL = "\ue000" + "7" * 5000 + "\ue001"
QWEN3 = ROOT / "tests" / "data" / "templates" / "Qwen-Qwen3-0.6B.jinja"


# -- a child on a pseudo-terminal ----------------------------------------------------------------
def run_on_pty(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, bytes, int, bool]:
    """(exit status, every byte that reached the terminal, peak RSS in KiB, timed out)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_LIMIT, CHILD_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            preexec_fn=limit, start_new_session=True)
    os.close(slave)
    out, ends, timed_out = bytearray(), time.monotonic() + CASE_SECONDS, False
    while True:
        if time.monotonic() > ends:
            proc.send_signal(signal.SIGKILL)
            timed_out = True
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None and not select.select([master], [], [], 0.05)[0]:
            break
    os.close(master)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), bytes(out), usage.ru_maxrss, timed_out


def harness_args(argv: list[str]) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "stress_files.py"), "--child", *argv]


def python_args(code: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", code, *argv]


# -- the cases -----------------------------------------------------------------------------------
def _yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _messages(folder: Path, name: str, messages: list[dict[str, Any]]) -> Path:
    return _yaml(folder / name, json.dumps(messages))


def _experiment(folder: Path, name: str, body: str) -> Path:
    head = ("models: [smollm2]\ntemplates: [chatml]\nseeds: [1]\nmax_tokens: 2\n"
            "sampling: {greedy: {temperature: 0}}\n")
    return _yaml(folder / name, head + body)


def _sparse_gguf(path: Path, n: int) -> Path:
    def gstr(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()

    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 2)
    head += gstr("tokenizer.ggml.eos_token_id") + struct.pack("<II", 4, n - 1)
    head += gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, n)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + 8 * n)
    return path


def make_cases(folder: Path, data: Path, seed_db: Path, server_url: str) -> list[tuple[str, str, list[str]]]:
    """(class, name, child argv) of every hostile case; files are written under `folder`."""
    from tests.support.runs import swell_turn

    exp_dir = folder / "exp"
    (exp_dir / "sub").mkdir(parents=True)
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    ok = _messages(folder, "ok.json", [{"role": "user", "content": "hi"}])
    (data / "templates").mkdir(parents=True, exist_ok=True)
    (data / "templates" / f"evil{ESC}.jinja").write_text("{{ messages[0].content }}")
    call = {"type": "function", "function": {"name": LONG_SENTINEL, "arguments": "{}"}}
    sentinel_msgs = _messages(folder, "sentinel.json", [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "user", "content": "again", "name": LONG_SENTINEL}])
    thinks = _messages(folder, "thinks.json", [{"role": "user", "content": "hi"}, {
        "role": "assistant", "content": "<think>why</think>so " * 60_000}, {"role": "user", "content": "ok"}])
    big_yaml = _yaml(folder / "big.yaml", "- role: user\n  content: |\n" + "    words and more words\n" * 1_500_000)
    preset = _yaml(folder / "preset.json", json.dumps({"name": "p" * 10_000, "input_sequence": "<u>",
                                                       "output_sequence": "<a>"}))
    gen = ["generate", "--template", "chatml", "--messages", str(ok), "--max-tokens", "2"]
    remote = ["generate", "--backend", f"openai+{server_url}", "--template", "chatml", "--messages", str(ok),
              "--max-tokens", "2", "--json"]
    cases = [
        ("output", "argparse echo", ["generate", f"--bogus{ESC}"]),
        ("output", "templates listing", ["templates"]),
        ("output", "run start/progress", [
            "run", str(_experiment(folder, "named.yaml", "name: \"x\\e]52;c;cHduZWQ=\\a\\e[2J\\N\"\nconversations:\n"
                                                          "  - {name: a, messages: [{role: user, content: Hi}]}\n")),
            "--db", str(data / "named.sqlite")]),
        ("output", "message content", ["render", "--template", "chatml", "--messages",
                                       str(_messages(folder, "esc.json", [{"role": "user", "content": ESC}]))]),
        ("sentinel", "render", ["render", "--template", str(QWEN3), "--messages", str(sentinel_msgs)]),
        ("sentinel", "generate", ["generate", "--template", str(QWEN3), "--messages", str(sentinel_msgs),
                                  "--max-tokens", "2"]),
        ("sentinel", "--var tools", ["render", "--template", str(QWEN3), "--messages", str(ok), "--var",
                                     "tools=" + json.dumps([{"type": "function", "function": {"name": LONG_SENTINEL}}])]),
        ("bounded", "60,000 think blocks", ["render", "--template", str(QWEN3), "--messages", str(thinks)]),
        ("files", "--messages /dev/zero", [*gen[:3], "--messages", "/dev/zero"]),
        ("files", "--messages FIFO", [*gen[:3], "--messages", str(fifo)]),
        ("files", "score --text /dev/zero", ["score", "--text", "/dev/zero"]),
        ("files", "import /dev/zero", ["import", "/dev/zero"]),
        ("files", "run FIFO", ["run", str(fifo)]),
        ("files", "30 MB YAML messages", ["render", "--template", "chatml", "--messages", str(big_yaml)]),
        ("files", "file: ../", ["run", str(_experiment(exp_dir, "up.yaml", "conversations:\n  - {file: ../ok.json}\n"))]),
        ("files", "file: absolute", ["run", str(_experiment(exp_dir, "abs.yaml", "conversations:\n  - {file: /etc/hostname}\n"))]),
        ("files", "file: special", ["run", str(_experiment(exp_dir, "dev.yaml", "conversations:\n  - {file: /dev/zero}\n"))]),
        ("files", "items file: integer", ["run", str(_experiment(exp_dir, "int.yaml", "items:\n  - {file: sub/int.yaml}\n"))]),
        ("files", "items file: 5,000 deep", ["run", str(_experiment(exp_dir, "deep.yaml", "items:\n  - {file: sub/deep.yaml}\n"))]),
        ("files", "preset with a 10,000-char name", ["import", str(preset)]),
        ("sizes", "sweep 6 x 50", ["run", str(_experiment(folder, "sweep.yaml", "conversations:\n"
                                   "  - {name: a, messages: [{role: user, content: Hi}]}\nsweep:\n" + "".join(
                                       f"  {k}: [{', '.join(str(0.01 * i) for i in range(1, 51))}]\n"
                                       for k in ("temperature", "top_p", "min_p", "repeat_penalty", "typical_p",
                                                 "top_k"))))]),
        ("sizes", "sparse GGUF, 30M empty tokens", python_args(
            "import sys; from harness.models.gguf import read_gguf_info; print(read_gguf_info(sys.argv[1]).n_vocab)",
            str(_sparse_gguf(folder / "sparse.gguf", 30_000_000)))),
        ("sizes", "report of a 150,000-token turn", ["report", str(swell_turn(seed_db, folder / "swollen.sqlite", 150_000, 100)),
                                                       "--html", str(data / "r.html")]),
        ("server", "logprob Infinity", [*remote[:2], f"openai+{server_url}/inf", *remote[3:]]),
        ("server", "logprob positive", [*remote[:2], f"openai+{server_url}/positive", *remote[3:]]),
        ("server", "logprob true", [*remote[:2], f"openai+{server_url}/true", *remote[3:]]),
        ("server", "deep JSON", [*remote[:2], f"openai+{server_url}/deep", *remote[3:]]),
        ("bias", "--bias Hello=inf", [*gen, "--bias", "Hello=inf"]),
        ("bias", "--bias 2=nan", [*gen, "--bias", "2=nan"]),
    ]
    _yaml(exp_dir / "sub" / "int.yaml", "5\n")
    _yaml(exp_dir / "sub" / "deep.yaml", "[" * 5000 + "]" * 5000 + "\n")
    return cases


# -- a hostile server whose path picks the lie ---------------------------------------------------
def serve_lies():
    """A loopback OpenAI-compatible server: /inf, /positive, /true send impossible logprobs,
    /deep a 100,000-deep JSON body. Returns (server, base URL)."""
    import threading
    from http.server import ThreadingHTTPServer

    sys.path.insert(0, str(ROOT))
    from tests.support.hostile_server import Hostile

    lies = {"inf": b"Infinity", "positive": b"3.5", "true": b"true"}

    class Liar(Hostile):
        def _route(self) -> str:
            """The lie the path's first part names; the rest is the real endpoint."""
            first, _, rest = self.path.strip("/").partition("/")
            if first in (*lies, "deep"):
                self.path = "/" + rest
                return first
            return ""

        def do_GET(self):
            if self._route() == "deep":
                body = b"[" * 100_000 + b"]" * 100_000
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            super().do_GET()

        def do_POST(self):
            self.lie = lies.get(self._route(), b"-0.1")
            super().do_POST()

        def completion(self):
            self.wfile.write(b'data: {"choices": [{"text": "a", "logprobs": {"tokens": ["a"], "token_logprobs": ['
                             + self.lie + b'], "top_logprobs": [{"a": -0.1}]}}]}\n\n')
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# -- growth ------------------------------------------------------------------------------------
def growth_inputs() -> dict[str, Any]:
    """name -> function of n doing the once-quadratic work on an input of size n."""
    sys.path.insert(0, str(ROOT))
    from harness.lab.diffing import diff_sequences
    from harness.prompt.attribution import char_offsets
    from harness.prompt.blocks import split_reasoning
    from harness.prompt.markers import TurnMarkers
    from harness.prompt.response import parse_response
    from harness.prompt.segments import Segment
    from harness.prompt.turns import TurnParser

    chatml = TurnMarkers(opens={"user": "<|im_start|>user\n", "assistant": "<|im_start|>assistant\n"},
                         closes={"user": "<|im_end|>\n", "assistant": "<|im_end|>\n"})

    def giant_markers(n: int) -> None:
        big = "-=" * n
        markers = TurnMarkers(opens={"user": "<u>" + big, "assistant": "<a>" + big + "y"},
                              closes={"user": "</u>", "assistant": "</a>"})
        TurnParser(markers).parse("hi</a><u>" + big + "q</u><a>" + big + "ya", "assistant")

    def think_blocks(n: int) -> None:
        text = "<think>why</think>so " * n
        split_reasoning(text, [Segment(0, len(text), "assistant", "content")])

    def streamed_role(n: int) -> None:
        tracker, text = TurnParser(chatml).tracker("assistant"), ""
        for i in range(n):
            text += "word " * 20 + ("<|im_end|>\n<|im_start|>user\n" if i % 50 == 0 else "")
            tracker.role(text)

    def response(n: int) -> None:
        parse_response("<tool_call>{\"name\": \"f\"}</tool_call>text " * n)

    def diff(n: int) -> None:
        a = "".join(f"line {i}\n" for i in range(n))
        diff_sequences(a, a.replace("line 7", "LINE 7"))

    def offsets(n: int) -> None:
        text = "héllo wörld " * n
        encoded = text.encode()
        char_offsets([encoded[i:i + 3] for i in range(0, len(encoded), 3)], text)

    return {"giant markers (chars)": (giant_markers, 20_000), "think blocks": (think_blocks, 6_000),
            "streamed role (tokens)": (streamed_role, 2_000), "parse_response (calls)": (response, 6_000),
            "diff (lines)": (diff, 30_000), "token offsets (chars/12)": (offsets, 30_000)}


def measure_growth() -> list[tuple[str, float, float]]:
    """(name, seconds at n, seconds at 10 n): the best of three at each size."""
    out = []
    for name, (work, n) in growth_inputs().items():
        times = []
        for size in (n, 10 * n):
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                work(size)
                best = min(best, time.perf_counter() - start)
            times.append(best)
        out.append((name, times[0], times[1]))
    return out


# -- the run -------------------------------------------------------------------------------------
RAW = (b"\x1b", b"\x07", b"\xc2\x9b")


def run_classes(root: Path, seed_db: Path, env: dict[str, str], classify) -> int:
    """Run every case and the growth measurements; print the figures; 1 if any case failed."""
    server, url = serve_lies()
    data = Path(env["HARNESS_HOME"])
    cases = make_cases(root / "classes", data, seed_db, url)
    verdicts: dict[str, dict[str, int]] = {}
    peak, raw_cases, bad = 0, 0, 0
    for cls, name, argv in cases:
        args = argv if argv[0] == sys.executable else harness_args(argv)
        code, out, rss, timed_out = run_on_pty(args, env, root / "cwd")
        text = out.decode("utf-8", "replace").replace("\r\n", "\n")
        verdict = classify(code, text, timed_out)
        last = (text.strip().splitlines() or [""])[-1]
        if verdict == "exit 2" and "error:" in last:
            verdict = "usage error"  # argparse's own exit status: its usage, then one error line
        raw = any(r in out for r in RAW)
        verdicts.setdefault(cls, {}).setdefault(verdict, 0)
        verdicts[cls][verdict] += 1
        peak, raw_cases = max(peak, rss), raw_cases + raw
        flag = "" if verdict in ("ok", "one-line error", "usage error") and not raw else "   <-- "
        bad += bool(flag)
        first = text.strip().splitlines()[:1]
        print(f"  {cls:9} {name:34} {verdict:15} {rss / 1024:5.0f} MB  {first[0][:90] if first else ''}{flag}")
    server.shutdown()
    counts: dict[str, int] = {}
    for by in verdicts.values():
        for v, n in by.items():
            counts[v] = counts.get(v, 0) + n
    print(f"classes: {len(cases)} cases: {', '.join(f'{n} {v}' for v, n in sorted(counts.items()))}; "
          f"tracebacks {counts.get('traceback', 0)}, timeouts {counts.get('timeout', 0)}, "
          f"raw controls on the pty {raw_cases}, peak RSS {peak / 1024:.0f} MB")
    print("growth (x10 input; linear is about x10, quadratic x100):")
    for name, small, large in measure_growth():
        print(f"  {name:26} {small * 1000:8.1f} ms -> {large * 1000:9.1f} ms   x{large / max(small, 1e-9):.1f}")
    with contextlib.suppress(OSError):
        shutil.rmtree(root / "classes")
    return 1 if bad or peak > 1024 * 1024 else 0
