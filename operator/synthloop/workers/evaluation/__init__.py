"""Evaluation harness pieces: multiple-choice log-likelihood, IFEval-style, reward win rate."""
