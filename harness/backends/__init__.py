"""Models that return label scores: the `Backend` protocol and its prefix registry (`base`), Hugging Face (`hf`, `loading`, `scorers`, `precision`), `embedded:` and `fake:`."""
