"""On disk: run folders, the score cache, settings-keyed folders (fresh / resume / reuse / refuse), and what identifies a model or a data source in them."""
