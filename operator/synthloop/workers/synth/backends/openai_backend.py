"""Any OpenAI-compatible chat endpoint (a vLLM server, NIM, ...), with the stdlib only.

Requests run on a bounded thread pool (``concurrency``); 429/5xx responses and connection
errors are retried with exponential backoff and jitter up to ``max_retries``; every request
has a timeout. A request that still fails yields empty completions (counted downstream as
parse failures) rather than aborting a whole shard, unless every request fails.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Message, Sampling

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class EndpointError(RuntimeError):
    """The endpoint rejected every request (bad URL, bad key, wrong model name)."""


class OpenAIBackend(GenerationBackend):
    def __init__(
        self,
        *,
        endpoint: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        base = endpoint.rstrip("/")
        self.url = base if base.endswith("/chat/completions") else (
            base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        )
        self.model_id = model
        self.api_key = os.environ.get(api_key_env, "")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.retries = 0  # observed, for stats and tests

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        rng = random.Random()
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                self.retries += 1
                time.sleep(self.backoff_s * (2 ** (attempt - 1)) * (0.5 + rng.random()))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    reply: dict[str, Any] = json.loads(resp.read())
                    return reply
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode(errors="replace")
                last = EndpointError(f"{self.url}: HTTP {exc.code}: {detail}")
                if exc.code not in RETRY_STATUS:
                    raise last from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, ValueError) as exc:
                last = EndpointError(f"{self.url}: {type(exc).__name__}: {exc}")
        assert last is not None
        raise last

    def _one(self, conversation: Sequence[Message], sampling: Sampling) -> list[Completion] | Exception:
        body = {
            "model": self.model_id,
            "messages": list(conversation),
            "max_tokens": sampling.max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "n": sampling.n,
            "seed": sampling.seed,
        }
        try:
            reply = self._post(body)
        except EndpointError as exc:
            return exc
        usage = reply.get("usage") or {}
        choices = reply.get("choices") or []
        out = [
            Completion(
                text=str((c.get("message") or {}).get("content") or ""),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)) // max(1, len(choices)),
                finish_reason="length" if c.get("finish_reason") == "length" else "stop",
            )
            for c in choices
        ]
        out += [Completion(text="", finish_reason="error")] * (sampling.n - len(out))
        return out[: sampling.n]

    def generate(
        self, conversations: Sequence[Sequence[Message]], *, sampling: Sampling
    ) -> list[list[Completion]]:
        if not conversations:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            results = list(pool.map(lambda c: self._one(c, sampling), conversations))
        errors = [r for r in results if isinstance(r, Exception)]
        if len(errors) == len(results):
            raise EndpointError(f"every request to {self.url} failed; last: {errors[-1]}")
        return [
            [Completion(text="", finish_reason="error")] * sampling.n if isinstance(r, Exception) else r
            for r in results
        ]
