"""Generation backends behind one interface; :func:`make_backend` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Sampling

if TYPE_CHECKING:
    from synthloop.artifacts.store import ArtifactStore
    from synthloop.models.io import LoadedModel
    from synthloop.workers.synth.params import GeneratorParams

__all__ = ["Completion", "GenerationBackend", "Sampling", "local_backend", "make_backend", "resolve_local"]


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
    return local_backend(params.backend, model=model, batch_size=params.batch_size, store=store,
                         cache_dir=cache_dir, tensor_parallel=params.tensor_parallel,
                         quantization=params.quantization, dtype=params.dtype, cpu_threads=params.cpu_threads)


def resolve_local(name: str) -> str:
    """``auto``: vLLM where this process sees a GPU and vllm is installed, else transformers."""
    if name != "auto":
        return name
    from importlib.util import find_spec

    import torch

    return "vllm" if torch.cuda.is_available() and find_spec("vllm") is not None else "transformers"


def local_backend(
    name: str,
    *,
    model: str,
    batch_size: int,
    store: ArtifactStore | None = None,
    cache_dir: str | None = None,
    tensor_parallel: int = 1,
    quantization: str | None = None,
    dtype: str | None = None,
    cpu_threads: int | None = None,
    device: str | None = None,
    loaded: LoadedModel | None = None,
) -> GenerationBackend:
    """A backend that runs ``model`` (an HF dir or URI) in this process: the one generation loop
    of the synth worker and the eval worker. ``loaded`` (transformers only) reuses a model
    already in memory."""
    name = resolve_local(name)
    if name == "vllm":
        from synthloop.workers.synth.backends.vllm_backend import VLLMBackend

        quant: dict[str, Any] = {"quantization": quantization} if quantization else {}  # vLLM FP8 weights
        if device and device.startswith("cuda:") and tensor_parallel == 1:
            pin_engine_gpu(int(device.partition(":")[2]))
        return VLLMBackend(model=model, tensor_parallel=tensor_parallel, store=store,
                           cache_dir=cache_dir, dtype=dtype, **quant)
    if name != "transformers":
        raise ValueError(f"backend {name!r}: expected auto, transformers or vllm")
    from synthloop.workers.synth.backends.transformers_backend import TransformersBackend

    return TransformersBackend(model=model, batch_size=batch_size, store=store, cache_dir=cache_dir,
                               dtype=dtype, num_threads=cpu_threads, device=device, loaded=loaded)


def pin_engine_gpu(index: int) -> None:
    """Give the vLLM engine (a subprocess it spawns) only this rank's GPU: ranks of a
    data-parallel eval each run their own one-GPU engine instead of all starting on GPU 0."""
    import os

    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    os.environ["CUDA_VISIBLE_DEVICES"] = visible[index] if index < len(visible) else str(index)
