"""On disk: run folders, the score cache, settings-keyed folders (fresh / resume / reuse / refuse), model and data identity, scoring jobs, a compare's folder."""
