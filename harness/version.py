"""The version of Tenser that wrote a run folder or a cache entry (results.json, the score cache key)."""

VERSION = "0.1.0"
