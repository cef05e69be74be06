"""Generation backends behind one interface; :func:`make_backend` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthloop.workers.synth.backends.base import Completion, GenerationBackend, Sampling

if TYPE_CHECKING:
    from synthloop.api.v1alpha1.synth import Generator
    from synthloop.artifacts.store import ArtifactStore
    from synthloop.models.io import LoadedModel

__all__ = ["Completion", "GenerationBackend", "Sampling", "cpu_threads", "local_backend", "make_backend",
           "resolve_local"]


def make_backend(
    generator: Generator,
    *,
    model: str | None,
    store: ArtifactStore | None = None,
    cache_dir: str | None = None,
) -> GenerationBackend:
    """The backend ``generator.backend`` (the SynthRound's own settings) for ``model``: the
    resolved ``inputs.model`` (a dir or URI), or for ``openai`` the served model's name."""
    if generator.backend == "openai":
        from synthloop.workers.synth.backends.openai_backend import OpenAIBackend

        assert generator.endpoint is not None  # the API's CEL rule: openai needs an endpoint
        return OpenAIBackend(endpoint=generator.endpoint, model=model or "default")
    if not model:
        raise ValueError(f"generator backend {generator.backend!r} needs a model: set spec.generator.model")
    return local_backend(generator.backend, model=model, batch_size=generator.batch_size, store=store,
                         cache_dir=cache_dir, tensor_parallel=generator.tensor_parallel,
                         quantization=generator.quantization, cpu_threads=cpu_threads())


def cpu_threads() -> int:
    """The pod's CPU threads for generation (``SYNTHLOOP_CPU_THREADS``, as every worker)."""
    from synthloop.workers.runtime.run import cpu_threads as threads

    return threads()


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
