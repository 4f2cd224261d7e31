"""Explanations in words: the evidence line, the movement vocabulary, the grounding check."""
