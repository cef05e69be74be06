"""SentencePiece-style tokenizer trained in code, plus the one chat template every model uses.

Nemotron-4 uses a 256K SentencePiece vocabulary; the tiny presets train a small BPE vocabulary
with the ``tokenizers`` SentencePiece trainer (Metaspace ``▁`` word boundaries) on the run's own
corpus, so nothing is downloaded. Every printable ASCII character, newline and tab is in the base
alphabet so any ASCII text round-trips; other characters map to ``<unk>``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

UNK = "<unk>"
PAD = "<pad>"
BOS = "<s>"
EOS = "</s>"
SYSTEM_TURN = "<extra_id_0>"
TURN = "<extra_id_1>"
#: Fixed ids 0..5 (bos 2 / eos 3 as in ``NemotronConfig``'s defaults).
SPECIAL_TOKENS: tuple[str, ...] = (UNK, PAD, BOS, EOS, SYSTEM_TURN, TURN)

#: Nemotron-4 chat format: ``<extra_id_0>System\n{system}\n`` then
#: ``<extra_id_1>User\n{content}\n`` / ``<extra_id_1>Assistant\n{content}\n`` per turn. The system
#: block is always rendered (empty when absent) so prompts look alike with and without one.
CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'] -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{{ '<extra_id_0>System\\n' + system + '\\n' }}"
    "{%- for m in turns -%}"
    "{%- if m['role'] == 'user' -%}{{ '<extra_id_1>User\\n' + m['content'] + '\\n' }}"
    "{%- elif m['role'] == 'assistant' -%}{{ '<extra_id_1>Assistant\\n' + m['content'] + '\\n' }}"
    "{%- else -%}{{ raise_exception('unknown role ' + m['role'] + ': expected user or assistant') }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<extra_id_1>Assistant\\n' }}{%- endif -%}"
)

_ALPHABET = sorted(set(string.printable) - {"\x0b", "\x0c", "\r"} | {"▁"})


def train_tokenizer(texts: Iterable[str], *, vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a SentencePiece-BPE tokenizer on ``texts`` and wrap it with the chat template."""
    from tokenizers import SentencePieceBPETokenizer

    minimum = len(SPECIAL_TOKENS) + len(_ALPHABET) + 1
    if vocab_size < minimum:
        raise ValueError(f"vocab_size={vocab_size}: expected at least {minimum} (specials + alphabet)")
    from tokenizers import pre_tokenizers

    sp = SentencePieceBPETokenizer(unk_token=UNK, add_prefix_space=False)
    # Words also end at a newline, so no token spans "Assistant\n" and the answer after it:
    # the loss mask of a turn then starts exactly at a token boundary.
    sp._tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="merged_with_previous"),
        sp._tokenizer.pre_tokenizer,
    ])
    sp.train_from_iterator(
        iter(texts),
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=_ALPHABET,
        limit_alphabet=len(_ALPHABET),
        show_progress=False,
    )
    return wrap_tokenizer(sp._tokenizer)


def wrap_tokenizer(raw: object) -> PreTrainedTokenizerFast:
    """Wrap a raw ``tokenizers.Tokenizer`` as the HF fast tokenizer all workers load."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token=UNK,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=[SYSTEM_TURN, TURN],
        clean_up_tokenization_spaces=False,
        model_max_length=1_000_000,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def stop_token_ids(tokenizer: PreTrainedTokenizerFast) -> list[int]:
    """Token ids that end an assistant turn: ``</s>`` and the next-turn marker."""
    return [int(tokenizer.convert_tokens_to_ids(EOS)), int(tokenizer.convert_tokens_to_ids(TURN))]
