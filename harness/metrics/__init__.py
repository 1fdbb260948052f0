"""Numbers from predictions: the metric catalog, classification and reviewer metrics, seed statistics (numpy/scipy only, so reports may import them), and `evaluate` modules (`extra`)."""
