"""Models that return label scores: the `Backend` protocol (`base`), the prefix registry (`registry`), Hugging Face (`hf`, `loading`, `scorers`, `precision`), `embedded:` and `fake:`."""
