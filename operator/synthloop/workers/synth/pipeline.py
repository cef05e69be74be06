"""One shard of a SynthRound, in memory: prompts -> candidates -> verdicts -> records.

Kept free of storage so it can be tested with any backend and judge; ``shard.py`` does the
I/O. Every record that is not kept is counted in :class:`Stats` under the reason it went.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from synthloop.api.worker import SynthParams
from synthloop.verifiers.math import check_answer
from synthloop.verifiers.python_exec import check_program
from synthloop.verifiers.registry import instruction_from_dict
from synthloop.verifiers.scoring import score
from synthloop.workers.runtime.distributed import shard_range
from synthloop.workers.synth import formats
from synthloop.workers.synth.backends.base import GenerationBackend, Message, Sampling
from synthloop.workers.synth.dedup import dedup, prompt_text
from synthloop.workers.synth.dialogues import FAMILY as DIALOGUE
from synthloop.workers.synth.dialogues import make_dialogues
from synthloop.workers.synth.families import FAMILIES, FamilyContext, PromptItem
from synthloop.workers.synth.families.base import family_options
from synthloop.workers.synth.families.seeds import COMPANIES, REFUSALS, UNANSWERABLE
from synthloop.workers.synth.judge import RewardJudge
from synthloop.workers.synth.parsing import clean_response, is_refusal
from synthloop.workers.synth.ranking import Candidate, pick_sft, rank_pair
from synthloop.workers.synth.stats import Stats

REFUSAL = "refusal"
#: What the pipeline does that the spec does not choose (the recipe's, not a setting): when the
#: generator's output for a prompt-building step does not parse, use our template instead
#: (counted as ``template_fallbacks``); drop candidates that refuse an answerable prompt; the
#: Python verifier's sandbox limits.
TEMPLATE_FALLBACK = True
DROP_REFUSALS = True
EXEC_TIMEOUT_S = 5.0
EXEC_MEMORY_MB = 512
Progress = Callable[[str, int, int], None]


@dataclass
class ShardOutput:
    sft: list[dict[str, Any]] = field(default_factory=list)
    preference: list[dict[str, Any]] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


def refusal_items(params: SynthParams, indices: Sequence[int]) -> list[PromptItem]:
    import random

    items = []
    for j in indices:
        rng = random.Random(f"{params.seed}:{REFUSAL}:{j}")
        prompt = rng.choice(UNANSWERABLE).format(company=rng.choice(COMPANIES))
        messages: list[Message] = [{"role": "user", "content": prompt}]
        items.append(PromptItem(id=f"{REFUSAL}-{j}", family=REFUSAL, messages=messages, refusal=rng.choice(REFUSALS)))
    return items


def verify(item: PromptItem, text: str, *, timeout_s: float, memory_mb: int) -> tuple[float | None, bool]:
    """``(score, all_passed)`` against the item's ground truth; ``(None, False)`` without one."""
    if item.refusal is not None:
        ok = is_refusal(text)
        return float(ok), ok
    if not item.has_verifier:
        return None, False
    parts: list[float] = []
    passed = True
    if item.answer is not None:
        ok = check_answer(text, item.answer)
        parts.append(1.0 if ok else 0.0)
        passed &= ok
    if item.tests:
        ok = check_program(text, item.tests, timeout_s=timeout_s, memory_mb=memory_mb)
        parts.append(1.0 if ok else 0.0)
        passed &= ok
    if item.instructions:
        results = score(text, [instruction_from_dict(d) for d in item.instructions], loose=False)
        # Constraints weigh half a correct answer when both exist: correctness dominates.
        weight = 0.5 if parts else 1.0
        parts.append(weight * sum(results) / len(results))
        passed &= all(results)
    return sum(parts), passed


class Pipeline:
    def __init__(
        self,
        params: SynthParams,
        *,
        backend: GenerationBackend,
        extra_backends: Sequence[GenerationBackend] = (),
        judge: RewardJudge | None = None,
        documents: Sequence[str] = (),
        shard_index: int = 0,
        num_shards: int = 1,
        progress: Progress | None = None,
    ) -> None:
        self.params = params
        self.backend = backend
        self.extra_backends = list(extra_backends)
        self.judge = judge
        self.documents = list(documents)
        self.shard_index = shard_index
        self.num_shards = num_shards
        self.progress = progress or (lambda stage, done, total: None)
        self.stats = Stats()
        self.seed = params.seed * 1_000_003 + shard_index

    def _range(self, total: int) -> range:
        return shard_range(total, index=self.shard_index, shards=self.num_shards)

    def sampling(self) -> Sampling:
        g = self.params.generator
        return Sampling(max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p,
                        n=self.params.preference.responses_per_prompt, seed=self.seed)

    def build_prompts(self) -> list[PromptItem]:
        items: list[PromptItem] = []
        families = family_options(self.params.prompts)
        for done, (name, spec) in enumerate(families.items()):
            indices = list(self._range(spec.count))
            if not indices:
                continue
            ctx = FamilyContext(
                family=name, options=spec, backend=self.backend, sampling=self.sampling(),
                stats=self.stats, seed=self.params.seed, template_fallback=TEMPLATE_FALLBACK,
                documents=self.documents,
            )
            made = FAMILIES[name](ctx, indices)
            self.stats.add(name, "prompts", len(made))
            self.stats.add(name, "prompts_lost", len(indices) - len(made))
            items.extend(made)
            self.progress("prompts", done + 1, len(families))
        refusals = refusal_items(self.params, list(self._range(self.params.prompts.refusals)))
        if refusals:
            self.stats.add(REFUSAL, "prompts", len(refusals))
        return items + refusals

    def candidates(self, items: Sequence[PromptItem]) -> list[list[Candidate]]:
        out: list[list[Candidate]] = [[] for _ in items]
        sampling = self.sampling()
        for backend in [self.backend, *self.extra_backends]:
            generated = backend.generate([it.messages for it in items], sampling=sampling)
            for k, (item, completions) in enumerate(zip(items, generated)):
                for c in completions:
                    self.stats.add(item.family, "generated")
                    text = clean_response(c.text)
                    if not text:
                        self.stats.add(item.family, "parse_failures")
                        self.stats.add(item.family, "parse_failures.response")
                        continue
                    out[k].append(Candidate(text=text, source=backend.model_id))
        for k, item in enumerate(items):
            if item.refusal is not None:
                out[k].append(Candidate(text=item.refusal, source="refusal-template"))
            elif self.params.preference.include_reference and item.reference is not None:
                out[k].append(Candidate(text=item.reference, source="reference"))
        for item, cands in zip(items, out):
            for cand in cands:
                cand.verifier, cand.verified = verify(item, cand.text, timeout_s=EXEC_TIMEOUT_S,
                                                      memory_mb=EXEC_MEMORY_MB)
                cand.refusal = DROP_REFUSALS and item.refusal is None and is_refusal(cand.text)
        if self.judge is not None:
            flat = [(item, cand) for item, cands in zip(items, out) for cand in cands]
            rewards = self.judge.rewards(
                [item.messages + [{"role": "assistant", "content": cand.text}] for item, cand in flat])
            for (_, cand), r in zip(flat, rewards):
                cand.reward = r
        return out

    def select(self, items: Sequence[PromptItem], cands: Sequence[list[Candidate]], out: ShardOutput) -> None:
        threshold = self.params.reward_filter.threshold if self.judge is not None else None
        for item, options in zip(items, cands):
            fam = item.family
            if item.refusal is not None:
                chosen: Candidate | None = next(c for c in options if c.source == "refusal-template")
                reason = ""
            else:
                refused = sum(c.refusal for c in options)
                if refused:
                    self.stats.add(fam, "refusals_dropped", refused)
                chosen, reason = pick_sft(options, threshold=threshold)
            if chosen is None:
                self.stats.add(fam, reason)
            else:
                out.sft.append(formats.sft_row(item.messages + [{"role": "assistant", "content": chosen.text}],
                                               id=item.id, family=fam))
                self.stats.add(fam, "sft_accepted")
            pair, why = rank_pair(options, judge=self.params.preference.judge)
            if pair is None:
                self.stats.add(fam, f"pairs_dropped.{why}")
                continue
            if pair.chosen.text.strip() == pair.rejected.text.strip():
                self.stats.add(fam, "pairs_dropped.identical")
                continue
            out.preference.append(formats.preference_row(
                item.messages, chosen=pair.chosen.text, rejected=pair.rejected.text,
                chosen_reward=pair.chosen_reward, rejected_reward=pair.rejected_reward,
                judge=pair.judge, id=item.id, family=fam,
            ))
            self.stats.add(fam, "preference_accepted")
            self.stats.add(fam, f"judged_by.{pair.judge}")

    def dialogues(self, out: ShardOutput) -> None:
        dlg = self.params.dialogues
        indices = list(self._range(dlg.count))
        if not indices:
            return
        made = make_dialogues(
            dlg, indices=indices, backend=self.backend, max_tokens=self.params.generator.max_tokens,
            stats=self.stats, seed=self.params.seed, template_fallback=TEMPLATE_FALLBACK,
        )
        threshold = self.params.reward_filter.threshold
        rewards = self.judge.rewards([m for _, m in made]) if self.judge is not None else [None] * len(made)
        for (dialogue_id, messages), reward in zip(made, rewards):
            if reward is not None and threshold is not None and reward < threshold:
                self.stats.add(DIALOGUE, "filtered_by_reward")
                continue
            out.sft.append(formats.sft_row(messages, id=dialogue_id, family=DIALOGUE))
            self.stats.add(DIALOGUE, "sft_accepted")

    def dedup(self, out: ShardOutput) -> None:
        dd = self.params.dedup
        out.sft = dedup_rows(out.sft, key=lambda r: prompt_text(r["messages"]), stats=self.stats,
                             exact=dd.exact, near_threshold=dd.near_threshold, kind="sft")
        out.preference = dedup_rows(out.preference, key=lambda r: prompt_text(r["prompt"]), stats=self.stats,
                                    exact=dd.exact, near_threshold=dd.near_threshold, kind="preference")

    def run(self) -> ShardOutput:
        out = ShardOutput(stats=self.stats)
        items = self.build_prompts()
        self.progress("responses", 0, len(items))
        cands = self.candidates(items)
        self.progress("responses", len(items), len(items))
        self.select(items, cands, out)
        self.dialogues(out)
        self.dedup(out)
        return out


def dedup_rows(
    rows: list[dict[str, Any]],
    *,
    key: Callable[[dict[str, Any]], str],
    stats: Stats,
    exact: bool,
    near_threshold: float | None,
    kind: str,
) -> list[dict[str, Any]]:
    """Rows without duplicate prompts; each drop is counted against the row's family."""
    result = dedup(rows, key=key, exact=exact, near_threshold=near_threshold)
    kept = set(result.kept)
    for i, row in enumerate(rows):
        if i not in kept:
            stats.add(row["family"], "duplicates")
            stats.add(row["family"], f"duplicates.{kind}")
            stats.add(row["family"], f"{kind}_accepted", -1)
    return [rows[i] for i in result.kept]
