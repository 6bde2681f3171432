"""llama.cpp's ``llama-server`` through its native API: ``/props``, ``/tokenize``,
``/detokenize`` and streamed ``/completion`` with ``n_probs``. Never the chat endpoint.

What the native API gives: token ids with their bytes for every generated token and every
top-k alternative, probabilities as a softmax of the raw logits (``post_sampling_probs`` left
off, so they are the model's own distribution), the chat template and BOS/EOS texts in
``/props``, and prompts as text or token ids (a leading string gets the BOS the model wants,
then the ids follow exactly — how a ``continue`` resumes after an EOS).
EOS policies: ``ignore_eos`` in llama-server *bans* the end-of-generation tokens, so ``ban``
sends it plus a ``false`` logit bias on the ids harness knows; ``continue`` is emulated by the
loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from harness.backends import server_values as values
from harness.backends.base import ModelInfo
from harness.backends.http import HttpClient
from harness.backends.remote import CompletionRequest, RemoteFinish, RemoteStep, TopEntry
from harness.errors import RemoteError

# Token texts llama.cpp itself treats as end of generation when the vocabulary has them (its
# vocabulary loader matches these names; FIM pad / repo / separator tokens count too). /props
# names only the EOS, so the engine asks /tokenize which of these are single tokens here.
EOG_TEXTS = ("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
             "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
             "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
             "<｜end▁of▁sentence｜>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
             "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>")


class LlamaServerEngine:
    kind = "llama-server"
    top_by_id = True

    def __init__(self, base_url: str, *, client: HttpClient | None = None):
        self.url = base_url.rstrip("/")
        self.http = client or HttpClient(self.url)
        props = self.http.get("/props")
        if not isinstance(props, dict):
            raise RemoteError("/props is not an object", where=self.url + "/props",
                              hint="is this a llama-server?")
        self._pieces: dict[int, bytes] = {}
        settings = props.get("default_generation_settings")
        settings = settings if isinstance(settings, dict) else {}
        n_ctx = settings.get("n_ctx") or props.get("n_ctx") or 0
        if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or n_ctx < 0:
            raise RemoteError(f"/props gives n_ctx {n_ctx!r:.40}, not a count", where=self.url + "/props",
                              hint="is this a llama-server?")
        slots = props.get("total_slots")
        self.slots = slots if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0 else 1
        bos_text, eos_text = str(props.get("bos_token") or ""), str(props.get("eos_token") or "")
        bos_id = self.token_id(bos_text) if bos_text else None
        eos_id = self.token_id(eos_text) if eos_text else None
        path = str(props.get("model_path") or props.get("model_alias") or self.url)
        self.info = ModelInfo(
            name=path.rsplit("/", 1)[-1].removesuffix(".gguf"), path=self.url,
            architecture="remote (llama-server)", n_vocab=self._n_vocab(), n_ctx=n_ctx, n_ctx_train=n_ctx,
            eog_ids=self._named_eog_ids() | ({eos_id} if eos_id is not None else set()),
            bos_id=bos_id, eos_id=eos_id,
            bos_text=bos_text, eos_text=eos_text, add_bos=False,  # the server adds it to text prompts
            chat_template=props.get("chat_template") or None)

    def _n_vocab(self) -> int:
        """The vocabulary size ``/v1/models`` reports (``meta.n_vocab``; 0 when it does not): the
        upper entropy bound of a top-k list spreads the tail over it."""
        try:
            models = self.http.get("/v1/models")
        except RemoteError:
            return 0
        data = models.get("data") if isinstance(models, dict) else None
        meta = data[0].get("meta") if isinstance(data, list) and data and isinstance(data[0], dict) else None
        n_vocab = meta.get("n_vocab") if isinstance(meta, dict) else None
        return n_vocab if isinstance(n_vocab, int) and not isinstance(n_vocab, bool) and n_vocab > 0 else 0

    def _named_eog_ids(self) -> frozenset[int]:
        """The ids of EOG_TEXTS that are single special tokens of the served vocabulary."""
        ids = self.tokenize("\n".join(EOG_TEXTS))
        return frozenset(i for i in ids if self._pieces.get(i, b"").decode("utf-8", "replace") in EOG_TEXTS)

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        answer = self.http.post("/tokenize", {"content": text, "add_special": False,
                                              "parse_special": special, "with_pieces": True})
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list):
            raise RemoteError("/tokenize answered without tokens", where=self.url + "/tokenize")
        ids = []
        try:
            for token in tokens:
                if isinstance(token, dict):
                    ids.append(values.token_id(token["id"], field="tokens[].id", url=self.url + "/tokenize"))
                    self._pieces.setdefault(ids[-1], _piece_bytes(token.get("piece")))
                else:
                    ids.append(values.token_id(token, field="tokens[]", url=self.url + "/tokenize"))
        except (TypeError, ValueError, KeyError) as exc:
            raise RemoteError(f"/tokenize answered a malformed token list ({exc})",
                              where=self.url + "/tokenize", hint="is this a llama-server?") from None
        return ids

    def token_id(self, text: str) -> int | None:
        ids = self.tokenize(text)
        return ids[0] if len(ids) == 1 else None

    def is_special(self, token: int) -> bool:
        return token in self.info.eog_ids or token == self.info.bos_id

    def canonical(self, token: int) -> int:
        return token  # the native API reports ids

    def piece(self, token: int) -> bytes:
        cached = self._pieces.get(token)
        if cached is None:
            answer = self.http.post("/detokenize", {"tokens": [token]})
            text = answer.get("content") if isinstance(answer, dict) else None
            cached = text.encode("utf-8") if isinstance(text, str) else b""
            self._pieces[token] = cached
        return cached

    def request_body(self, req: CompletionRequest) -> dict[str, Any]:
        bias: list[list[Any]] = [[i, v] for i, v in req.bias.items()]
        bias += [[i, False] for i in req.ban]
        prompt: Any = [req.prompt, *req.generated_ids] if req.generated_ids else req.prompt
        return {
            "prompt": prompt, "n_predict": req.max_tokens, "temperature": req.temperature,
            "top_k": req.top_k, "top_p": req.top_p, "min_p": req.min_p,
            "repeat_penalty": req.repeat_penalty, "repeat_last_n": req.repeat_last_n,
            "seed": req.seed if req.seed is not None else -1, "n_probs": req.n_probs,
            "logit_bias": bias, "ignore_eos": bool(req.ban), "stream": True, "cache_prompt": True,
            "return_tokens": True, "post_sampling_probs": False, **req.samplers,
        }

    def complete(self, request: CompletionRequest,
                 should_stop: Callable[[], bool] | None = None) -> Iterator[RemoteStep | RemoteFinish]:
        held: RemoteStep | None = None  # an end-of-generation token, until we see what follows it
        for chunk in self.http.stream("/completion", self.request_body(request), should_stop):
            if not isinstance(chunk, dict):
                raise RemoteError("a completion chunk is not an object", where=self.url + "/completion")
            steps = self._steps(chunk.get("completion_probabilities") or [])
            if chunk.get("stop"):
                reason = {"eos": "eos", "word": "stop"}.get(str(chunk.get("stop_type")), "length")
                emitted = chunk.get("tokens") or chunk.get("content")
                steps = ([held] if held is not None else []) + (steps if emitted or held is None else [])
                # the EOS comes either streamed as a token of its own (then the final chunk is
                # empty) or only as the final chunk's probabilities
                eos_step = steps.pop() if steps and reason == "eos" and (held or not emitted) else None
                yield from steps
                yield RemoteFinish(reason, eos_step)
                return
            if held is not None:
                yield held
                held = None
            if steps and steps[-1].id in self.info.eog_ids:
                held = steps.pop()
            yield from steps
        if held is not None:
            yield held
        yield RemoteFinish("length")

    def _steps(self, entries: Any) -> list[RemoteStep]:
        try:
            return [self._step(entry) for entry in entries]
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise RemoteError(f"a malformed token probability entry ({exc.__class__.__name__}: {exc})",
                              where=self.url + "/completion", hint="is this a llama-server?") from None

    def _step(self, entry: Any) -> RemoteStep:
        if not isinstance(entry, dict) or "id" not in entry:
            raise RemoteError("a token probability entry without an id", where=self.url + "/completion",
                              hint="llama-server builds before the 2025 probability format are not supported")
        url = self.url + "/completion"
        raw = self._remember(entry, url)
        top = tuple(TopEntry(self._id(t, url), self._remember(t, url).decode("utf-8", "replace"), _prob(t, url))
                    for t in entry.get("top_logprobs") or entry.get("top_probs") or [])
        return RemoteStep(self._id(entry, url), raw, _prob(entry, url), top)

    @staticmethod
    def _id(entry: Any, url: str) -> int:
        if not isinstance(entry, dict):
            raise TypeError("a top entry must be a mapping")
        return values.token_id(entry.get("id"), field="completion_probabilities[].id", url=url)

    def _remember(self, entry: dict[str, Any], url: str) -> bytes:
        raw = bytes(entry["bytes"]) if isinstance(entry.get("bytes"), list) else str(entry.get("token", "")).encode()
        token = self._id(entry, url)
        if not raw:  # a control token: the stream shows it as "", /detokenize spells it out
            return self.piece(token)
        self._pieces.setdefault(token, raw)
        return raw

    def close(self) -> None:
        pass


def _prob(entry: dict[str, Any], url: str) -> float:
    if "logprob" in entry:
        return values.logprob(entry["logprob"], field="completion_probabilities[].logprob", url=url)
    return values.prob(entry.get("prob", 0.0), field="completion_probabilities[].prob", url=url)


def _piece_bytes(piece: Any) -> bytes:
    if isinstance(piece, list):
        return bytes(piece)
    return str(piece or "").encode("utf-8")
