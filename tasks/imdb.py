"""Built-in IMDB tasks (Maas et al. 2011, Hub `stanfordnlp/imdb`): 25,000 test reviews,
balanced, labels 0 = negative and 1 = positive.

- `imdb_zeroshot`: a causal LM reads the review in a prompt and the log-probability of
  " negative" versus " positive" as the next word decides.
- `imdb_classifier`: a `...ForSequenceClassification` checkpoint (see `tenser finetune`)
  scores the review with its trained head.

They form the family `imdb` (`tenser compare --task imdb`).
"""

from __future__ import annotations

import dataclasses

from tasks.families import classifier_twin, register_family
from tasks.registry import Task

LABELS = ("negative", "positive")

ZEROSHOT = Task(
    name="imdb_zeroshot",
    kind="zeroshot",
    labels=LABELS,
    dataset="stanfordnlp/imdb",
    description="IMDB movie-review sentiment, zero-shot: next-word log-prob of ' negative' vs ' positive'",
    prompt="Review: {text}\nSentiment:",
    label_words=(" negative", " positive"),
    max_tokens=1024,
    tags=("sentiment", "imdb"),
    variants=(
        ("Movie review: {text}\nThe sentiment of this review is", " negative", " positive"),
        ("{text}\nDid the reviewer like the movie? Answer:", " No", " Yes"),
        ("{text}\nOverall, the movie was", " bad", " good"),
        ("Here is a movie review.\n{text}\nIn one word, the reviewer's opinion is", " negative", " positive"),
    ),
)

# The same data, labels and tags; a trained head reads at most 512 tokens (the fine-tuning default).
CLASSIFIER = dataclasses.replace(
    classifier_twin(ZEROSHOT, "imdb_classifier"), max_tokens=512,
    description="IMDB movie-review sentiment with a trained sequence-classification head",
)

register_family(ZEROSHOT, classifier=CLASSIFIER, name="imdb")
