"""The SynthRound worker: synthetic prompts, responses, dialogues and preference pairs.

``shard`` runs one deterministic slice of a round; ``merge`` combines verified shards. Heavy
dependencies (torch, vllm) are imported only inside the backend that needs them.
"""
