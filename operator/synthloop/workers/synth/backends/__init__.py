"""Generation backends behind one interface; :func:`make_backend` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Sampling

if TYPE_CHECKING:
    from synthloop.artifacts.store import ArtifactStore
    from synthloop.workers.synth.params import GeneratorParams

__all__ = ["Completion", "GenerationBackend", "Sampling", "make_backend"]


def make_backend(
    params: GeneratorParams,
    *,
    model: str | None,
    store: ArtifactStore | None = None,
    cache_dir: str | None = None,
) -> GenerationBackend:
    """The backend ``params.backend`` for ``model`` (a dir/URI, or a served model name)."""
    if params.backend == "openai":
        from synthloop.workers.synth.backends.openai_backend import OpenAIBackend

        assert params.endpoint is not None  # checked by GeneratorParams
        return OpenAIBackend(
            endpoint=params.endpoint,
            model=model or params.model or "default",
            api_key_env=params.api_key_env,
            concurrency=params.concurrency,
            timeout_s=params.timeout_s,
            max_retries=params.max_retries,
        )
    if not model:
        raise ValueError(f"generator backend {params.backend!r} needs a model: set inputs.model or generator.model")
    if params.backend == "vllm":
        from synthloop.workers.synth.backends.vllm_backend import VLLMBackend

        quant = {"quantization": params.quantization} if params.quantization else {}  # vLLM's FP8 weights
        return VLLMBackend(model=model, tensor_parallel=params.tensor_parallel, store=store,
                           cache_dir=cache_dir, dtype=params.dtype, **quant)
    from synthloop.workers.synth.backends.transformers_backend import TransformersBackend

    return TransformersBackend(model=model, batch_size=params.batch_size, store=store,
                               cache_dir=cache_dir, dtype=params.dtype, num_threads=params.cpu_threads)
