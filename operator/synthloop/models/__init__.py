"""Nemotron-4-style models: presets, construction, tokenizer, chat template and artifact I/O.

Import the submodules (``presets``, ``build``, ``tokenizer``, ``io``, ``reward``); this package
itself imports nothing heavy so light callers (params validation) stay torch-free.
"""
