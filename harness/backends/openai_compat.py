"""An OpenAI-compatible text-completion server (`/v1/completions` with `logprobs`): vLLM,
llama-cpp-python's server. Raw prompts only; the chat endpoint is never used.

What the API gives and what it does not:
- tokens come back as *text* (`logprobs.tokens`, `top_logprobs` keyed by text), not ids. Ids are
  recovered by tokenizing each distinct text through the server (vLLM ``/tokenize``,
  llama-cpp-python ``/extras/tokenize``); a text that is not exactly one token gets a negative
  id of its own (llama-cpp-python renders control tokens, ``<|im_end|>`` included, as "").
- the prompt is sent as text: the server tokenizes it (control-token strings parsed).
- there is no "ignore EOS": a sampled end-of-generation token ends the completion
  (finish_reason "stop"; harness sends no stop strings, so "stop" means EOS). ``continue`` is
  emulated by the loop (resume with the end-of-turn text appended); ``ban`` is a logit bias of
  -100 on the end-of-generation ids (the OpenAI range is [-100, 100]).
- the chat template is not exposed: pass ``--template``.
- the context length is known only when ``/v1/models`` reports ``max_model_len`` (vLLM).
- scoring a prompt: vLLM's ``prompt_logprobs`` (a non-streamed ``/v1/completions`` with the prompt
  as token ids) gives, per prompt position after the first, the logprob and rank of the token
  that came and of the top-k; other servers answer without it (refused with one line).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from harness.backends import server_values as values
from harness.backends.base import ModelInfo
from harness.backends.http import HttpClient
from harness.backends.remote import CompletionRequest, RemoteFinish, RemoteStep, TopEntry
from harness.errors import CommandError, RemoteError

BAN_BIAS = -100.0
VLLM_CONCURRENCY = 8  # candidates sent to a vLLM server at once
VLLM_MAX_LOGPROBS = 20  # vLLM's default --max-logprobs
_END = object()
PROBE_PROMPT, PROBE_K = "The", 5  # the raw-or-processed logprobs check
PROCESSED_LOGPROB_GAP = 0.01  # nats: raw logprobs agree far closer than this across settings
MAX_RESOLVE = 4096  # distinct token texts resolved through /tokenize, per engine
PROVISIONAL_BASE = -1_000_000  # ids below this are texts seen while streaming, resolved later
_TOKENIZE_ROUTES = (("/tokenize", "prompt", "tokens"), ("/extras/tokenize", "input", "tokens"))
_DETOKENIZE_ROUTES = (("/detokenize", "prompt"), ("/extras/detokenize", "text"))


class OpenAICompatEngine:
    kind = "openai"
    top_by_id = False  # top_logprobs is keyed by token text

    def __init__(self, base_url: str, *, client: HttpClient | None = None):
        self.url = base_url.rstrip("/")
        self.http = client or HttpClient(self.url)
        models = self.http.get("/v1/models")
        data = models.get("data") if isinstance(models, dict) else None
        if not data or not isinstance(data, list) or not isinstance(data[0], dict):
            raise RemoteError("/v1/models lists no model", where=self.url + "/v1/models",
                              hint="is this an OpenAI-compatible completion server?")
        self.model = str(data[0].get("id", ""))
        # vLLM batches whatever requests arrive; llama-cpp-python's server cancels a running
        # completion when another request comes, so others get one request at a time
        self.vllm = data[0].get("owned_by") == "vllm"
        self.slots = VLLM_CONCURRENCY if self.vllm else 1
        self._route: tuple[str, str, str] | None = None
        self._lock = threading.RLock()  # the token maps below, when candidates stream at once
        self._texts: dict[str, int] = {}  # token text -> id (negative: not one token)
        self._provisional: dict[str, int] = {}  # texts seen while streaming, not resolved yet
        self._provisional_text: dict[int, str] = {}
        self._pieces: dict[int, bytes] = {}
        self._asked = 0  # texts resolved through the server
        self._unknown = 0  # negative ids handed out
        self._bos_prefix = self._tokenize_raw("")  # llama-cpp-python adds BOS when the model does
        name = self.model.rsplit("/", 1)[-1] or self.url
        n_ctx = data[0].get("max_model_len") or 0
        if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or n_ctx < 0:
            raise RemoteError(f"/v1/models gives max_model_len {n_ctx!r:.40}, not a count",
                              where=self.url + "/v1/models")
        self.info = ModelInfo(name=name, path=self.url, architecture="remote (openai)", n_vocab=0,
                              n_ctx=n_ctx, n_ctx_train=n_ctx, eog_ids=frozenset(), bos_id=None,
                              eos_id=None, bos_text="", eos_text="", add_bos=False, chat_template=None)
        self.warnings: list[str] = []
        if self.vllm and self.logprobs_processed():  # llama-cpp-python's are the raw logits
            self.warnings.append(
                f"the server at {self.url} reports processed logprobs (after temperature and "
                "truncation): entropy and surprisal describe what it sampled from, not the model "
                "(vLLM: start it with --logprobs-mode raw_logprobs)")

    # -- what the logprobs are -----------------------------------------------------------------
    def _first_top(self, temperature: float, top_k: int) -> dict[str, float]:
        body = {"model": self.model, "prompt": PROBE_PROMPT, "max_tokens": 1, "logprobs": PROBE_K,
                "temperature": temperature, "top_k": top_k, "top_p": 1.0, "min_p": 0.0, "seed": 0,
                "stream": False}
        logprobs = _first_choice(self.http.post("/v1/completions", body), self.url).get("logprobs")
        tops = logprobs.get("top_logprobs") if isinstance(logprobs, dict) else None
        first = tops[0] if isinstance(tops, list) and tops and isinstance(tops[0], dict) else {}
        return {str(t): float(v) for t, v in first.items() if isinstance(v, int | float)}

    def logprobs_processed(self) -> bool:
        """Whether the server's logprobs depend on the sampling settings (vLLM's
        ``--logprobs-mode processed_logprobs``): the first token's top-k asked at temperature 1
        and again at 0.25 with top-k 2 must agree when they are the model's own. Asked of vLLM
        (whose ``--logprobs-mode`` decides it) once, when the engine opens; a server that answers
        without logprobs counts as raw."""
        try:
            raw, sharp = self._first_top(1.0, -1), self._first_top(0.25, 2)
        except (RemoteError, TypeError, ValueError, AttributeError):
            return False
        shared = raw.keys() & sharp.keys()
        return bool(shared) and max(abs(raw[t] - sharp[t]) for t in shared) > PROCESSED_LOGPROB_GAP

    # -- vocabulary --------------------------------------------------------------------------
    def _tokenize_raw(self, text: str) -> list[int]:
        routes = [self._route] if self._route else list(_TOKENIZE_ROUTES)
        last: RemoteError | None = None
        for path, field, key in routes:
            body: dict[str, Any] = {"model": self.model, field: text}
            if path == "/tokenize":
                body["add_special_tokens"] = False
            try:
                answer = self.http.post(path, body)
            except RemoteError as exc:  # not this dialect: try the next route
                last = exc
                continue
            tokens = answer.get(key) if isinstance(answer, dict) else None
            if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
                raise RemoteError(f"{path} answered without a token list", where=self.url + path)
            self._route = (path, field, key)
            return tokens
        assert last is not None
        raise RemoteError(f"the server has no tokenize endpoint ({last.message})", where=self.url,
                          hint="harness needs vLLM's /tokenize or llama-cpp-python's /extras/tokenize")

    def tokenize(self, text: str, special: bool = True) -> list[int]:  # noqa: ARG002 - always parsed
        ids = self._tokenize_raw(text)
        prefix = self._bos_prefix
        return ids[len(prefix):] if prefix and ids[: len(prefix)] == prefix else ids

    def resolve(self, text: str) -> int:
        """The id of a token named by its text; a negative id of its own if it is not one token.
        At most MAX_RESOLVE texts are ever asked of the server (one request each); texts past
        that (a server streaming ever new strings) keep a negative id."""
        with self._lock:
            return self._resolve(text)

    def _resolve(self, text: str) -> int:
        found = self._texts.get(text)
        if found is None:
            ids: list[int] = []
            if text and self._asked < MAX_RESOLVE:
                self._asked += 1
                ids = self.tokenize(text)
            if len(ids) == 1:
                found = ids[0]
            else:
                self._unknown += 1
                found = -self._unknown
            self._texts[text] = found
            self._pieces.setdefault(found, text.encode("utf-8"))
        return found

    def stream_id(self, text: str) -> int:
        """An id usable while a stream is open: the known one, or a provisional one."""
        known = self._texts.get(text)
        if known is not None:
            return known
        with self._lock:
            return self._provisional_id(text)

    def _provisional_id(self, text: str) -> int:
        if text not in self._provisional:
            token = PROVISIONAL_BASE - len(self._provisional)
            self._provisional[text] = token
            self._provisional_text[token] = text
            self._pieces[token] = text.encode("utf-8")
        return self._provisional[text]

    def canonical(self, token: int) -> int:
        text = self._provisional_text.get(token)
        return token if text is None else self.resolve(text)

    def token_id(self, text: str) -> int | None:
        found = self.resolve(text)
        if found >= 0:
            self._pieces[found] = text.encode("utf-8")
        return found if found >= 0 else None

    def is_special(self, token: int) -> bool:
        return token in self.info.eog_ids

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        if token < 0:
            return b""
        data = self._detokenize(token)
        self._pieces[token] = data
        return data

    def _detokenize(self, token: int) -> bytes:
        """Through the route of the tokenizer's dialect; b"" if the server cannot say (e.g.
        llama-cpp-python answers HTTP 500 for a piece that is not valid UTF-8 alone)."""
        extras = self._route is not None and self._route[0].startswith("/extras")
        path, key = _DETOKENIZE_ROUTES[1 if extras else 0]
        try:
            answer = self.http.post(path, {"model": self.model, "tokens": [token]})
        except RemoteError:
            return b""
        text = answer.get(key) if isinstance(answer, dict) else None
        return text.encode("utf-8") if isinstance(text, str) else b""

    # -- completion --------------------------------------------------------------------------
    def request_body(self, req: CompletionRequest) -> dict[str, Any]:
        samplers = req.samplers
        unsupported = [name for name, on in (("dry_multiplier", samplers.get("dry_multiplier", 0.0) > 0),
                                             ("typical_p", samplers.get("typical_p", 1.0) < 1),
                                             ("xtc_probability", samplers.get("xtc_probability", 0.0) > 0),
                                             ("mirostat", samplers.get("mirostat", 0) != 0)) if on]
        if unsupported:  # not in the OpenAI completions API (vLLM has none of them): refused, not ignored
            raise CommandError(f"{unsupported[0]} is not offered by OpenAI-compatible servers", field=unsupported[0],
                               hint="set it back to its default, or use llama-server+http:// or a local model")
        bias = {str(i): max(-100.0, min(100.0, v)) for i, v in req.bias.items()}
        bias.update({str(i): BAN_BIAS for i in req.ban})
        body: dict[str, Any] = {
            "model": self.model, "prompt": req.prompt + req.generated_text,
            "max_tokens": req.max_tokens, "temperature": req.temperature, "top_p": req.top_p,
            "top_k": req.top_k if req.top_k > 0 else -1, "min_p": req.min_p,
            "repeat_penalty": req.repeat_penalty, "repetition_penalty": req.repeat_penalty,
            "presence_penalty": samplers.get("presence_penalty", 0.0),
            "frequency_penalty": samplers.get("frequency_penalty", 0.0),
            "logprobs": req.n_probs, "stream": True, "echo": False,
            "skip_special_tokens": False,  # vLLM: control tokens stay in the text (others ignore it)
        }
        if bias:
            body["logit_bias"] = bias
        if req.seed is not None:
            body["seed"] = req.seed
        return body

    def complete(self, request: CompletionRequest,
                 should_stop: Callable[[], bool] | None = None) -> Iterator[RemoteStep | RemoteFinish]:
        finish = "length"
        chunks = self.http.stream("/v1/completions", self.request_body(request), should_stop)
        try:
            first = next(chunks, _END)
        except RemoteError as exc:
            raise _logprobs_refused(exc, request.n_probs) from None
        try:
            for chunk in itertools.chain([first] if first is not _END else [], chunks):
                choice = _first_choice(chunk, self.url)
                try:
                    steps = list(self._steps(choice.get("logprobs")))
                except (TypeError, ValueError, AttributeError) as exc:
                    raise RemoteError(f"a malformed completion chunk ({exc.__class__.__name__}: {exc})",
                                      where=self.url + "/v1/completions",
                                      hint="is this an OpenAI-compatible completion server?") from None
                yield from steps
                if choice.get("finish_reason"):
                    finish = "eos" if choice["finish_reason"] == "stop" else "length"
        finally:
            chunks.close()
        yield RemoteFinish(finish)

    def _steps(self, logprobs: Any) -> Iterator[RemoteStep]:
        if not isinstance(logprobs, dict):
            return
        tokens = logprobs.get("tokens") or []
        chosen = logprobs.get("token_logprobs") or [None] * len(tokens)
        tops = logprobs.get("top_logprobs") or [None] * len(tokens)
        for text, lp, top in zip(tokens, chosen, tops, strict=False):
            if not isinstance(text, str) or not isinstance(top, dict | None):
                raise TypeError("tokens must be texts and top_logprobs mappings of text to logprob")
            url = self.url + "/v1/completions"
            entries = sorted(((t, values.logprob(v, field="logprobs.top_logprobs[]", url=url))
                              for t, v in (top or {}).items()), key=lambda e: -e[1])
            chosen_p = None if lp is None else values.logprob(lp, field="logprobs.token_logprobs[]", url=url)
            yield RemoteStep(self.stream_id(text), text.encode("utf-8"), chosen_p,
                             tuple(TopEntry(self.stream_id(t), t, p) for t, p in entries))

    def prompt_logprobs(self, ids: Sequence[int], k: int) -> list[list[tuple[int, float, int | None]] | None]:
        """vLLM's ``prompt_logprobs`` of the prompt `ids`: per position None (the first: nothing
        predicts it) or [(token id, probability, rank)] holding the token that came and the
        top-k (rank 1 = most probable; vLLM's documented ``{id: {logprob, rank, decoded_token}}``)."""
        path = "/v1/completions"
        answer = self.http.post(path, {"model": self.model, "prompt": list(ids), "max_tokens": 1,
                                       "temperature": 0.0, "prompt_logprobs": k})
        rows = _first_choice(answer, self.url).get("prompt_logprobs")
        if rows is None and isinstance(answer, dict):
            rows = answer.get("prompt_logprobs")  # some vLLM versions put it beside the choices
        if not isinstance(rows, list) or len(rows) != len(ids):
            raise RemoteError("the server gave no prompt_logprobs for the prompt", where=self.url + path,
                              hint="scoring on a server needs vLLM (prompt_logprobs); or score with a local --model")
        out: list[list[tuple[int, float, int | None]] | None] = []
        for row in rows:
            if not row:
                out.append(None)
                continue
            if not isinstance(row, dict) or not all(isinstance(v, dict) for v in row.values()):
                raise RemoteError("prompt_logprobs in an unknown shape", where=self.url + path)
            url = self.url + path
            out.append([(values.token_id(token, field="prompt_logprobs[] key", url=url, key=True),
                         values.logprob(v.get("logprob"), field="prompt_logprobs[].logprob", url=url),
                         values.rank(v.get("rank"), field="prompt_logprobs[].rank", url=url))
                        for token, v in row.items()])
        return out

    def close(self) -> None:
        pass


def _logprobs_refused(exc: RemoteError, n_probs: int) -> RemoteError:
    """A refused completion, with what to do when it is vLLM's cap on top logprobs."""
    if exc.status != 400 or n_probs <= VLLM_MAX_LOGPROBS:
        return exc
    return RemoteError(exc.message, where=exc.where, status=exc.status, hint=(
        f"vLLM gives at most --max-logprobs top logprobs ({VLLM_MAX_LOGPROBS} unless started with "
        f"more): start it with --max-logprobs {n_probs}, or set n_probs {VLLM_MAX_LOGPROBS} (wider "
        "entropy bounds)"))


def _prob(logprob: Any) -> float:
    try:
        return math.exp(float(logprob))
    except (TypeError, ValueError, OverflowError):
        return 0.0


def _first_choice(chunk: Any, url: str) -> dict[str, Any]:
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not choices or not isinstance(choices[0], dict):
        message = chunk.get("error") if isinstance(chunk, dict) else None
        raise RemoteError(f"a completion chunk without choices{f': {message}' if message else ''}",
                          where=url + "/v1/completions")
    return choices[0]
