"""Model architecture presets: the Nemotron-4 340B shape and tiny shapes that train on a CPU.

Torch-free on purpose: the operator validates presets and counts parameters without torch.

Nemotron-4 340B (arXiv 2406.11704): decoder-only, 96 layers, hidden 18432, 96 query heads and 8
KV heads (GQA), FFN 73728 (4x hidden) with squared-ReLU and no gating, RoPE, no biases, dropout 0,
untied input/output embeddings, 256000 SentencePiece vocabulary, sequence 4096. The released
checkpoint (NeMo ``megatron_gpt`` config) rotates only half of each head
(``rotary_percentage: 0.5``) with base 10000; we rotate the whole head (``partial_rotary_factor``
1.0) by default, which changes no parameter and is what the tiny models use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class ModelDims:
    """The shape of a Nemotron-4-style decoder."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_kv_heads: int
    ffn_hidden_size: int
    seq_length: int
    vocab_size: int
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 1.0

    def __post_init__(self) -> None:
        for field in ("num_layers", "hidden_size", "num_attention_heads", "num_kv_heads",
                      "ffn_hidden_size", "seq_length", "vocab_size"):
            if getattr(self, field) <= 0:
                raise ValueError(f"{field}={getattr(self, field)}: expected a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_kv_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not divisible by "
                f"num_kv_heads={self.num_kv_heads} (GQA groups must be equal)"
            )
        if not 0.0 < self.partial_rotary_factor <= 1.0:
            raise ValueError(f"partial_rotary_factor={self.partial_rotary_factor}: expected (0, 1]")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def with_(self, **changes: Any) -> ModelDims:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    # --- parameter arithmetic (no torch) -------------------------------------------------
    def embedding_params(self) -> int:
        """Input embedding plus the untied output projection."""
        return 2 * self.vocab_size * self.hidden_size

    def layer_params(self) -> int:
        h, kv = self.hidden_size, self.num_kv_heads * self.head_dim
        attention = h * h + 2 * h * kv + h * h  # q, k, v, o; no biases
        mlp = 2 * h * self.ffn_hidden_size  # up, down; squared-ReLU has no gate
        norms = 2 * 2 * h  # two LayerNorm1P with weight and bias
        return attention + mlp + norms

    def non_embedding_params(self) -> int:
        return self.num_layers * self.layer_params() + 2 * self.hidden_size  # + final norm

    def total_params(self) -> int:
        return self.embedding_params() + self.non_embedding_params()

    def flops_per_token(self) -> float:
        """Training FLOPs per token (6N for the matmuls plus causal attention), as used for MFU."""
        attention = 6 * self.num_layers * self.seq_length * self.hidden_size  # 12*L*s*h / 2 causal
        return 6.0 * (self.non_embedding_params() + self.vocab_size * self.hidden_size) + attention


PRESETS: dict[str, ModelDims] = {
    "nemotron4-340b": ModelDims(
        num_layers=96, hidden_size=18432, num_attention_heads=96, num_kv_heads=8,
        ffn_hidden_size=73728, seq_length=4096, vocab_size=256000,
    ),
    # The demo model: trains on 2 CPU cores in seconds to a few minutes.
    "tiny": ModelDims(
        num_layers=4, hidden_size=128, num_attention_heads=4, num_kv_heads=2,
        ffn_hidden_size=512, seq_length=256, vocab_size=1024,
    ),
    # The test model: as small as still exercises GQA and several layers.
    "tiny-test": ModelDims(
        num_layers=2, hidden_size=64, num_attention_heads=4, num_kv_heads=2,
        ffn_hidden_size=256, seq_length=128, vocab_size=512,
    ),
}


def get_preset(name: str) -> ModelDims:
    """Look up a preset by name, naming the known ones when it is missing."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}: expected one of {sorted(PRESETS)}") from None
