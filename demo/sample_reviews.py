"""Sample movie reviews for the demo's example buttons (IMDB-style sentiment tasks), written
for this project, including hard cases: sarcasm, negation, mixed opinions and IMDB-style
HTML line breaks."""

from __future__ import annotations

# (short label shown on the example button, review text)
SAMPLE_REVIEWS: tuple[tuple[str, str], ...] = (
    ("Clearly positive",
     "A warm, funny and beautifully acted film. The two leads have real chemistry, the script never talks "
     "down to its audience, and the last twenty minutes had the whole cinema cheering. I would happily "
     "watch it again tomorrow."),
    ("Clearly negative",
     "Two hours I will never get back. The plot makes no sense, the dialogue sounds as if it was written "
     "by a committee, and the big twist is obvious from the opening scene. Avoid."),
    ("Sarcasm",
     "Oh wonderful, another sequel nobody asked for. I especially loved the part where the villain "
     "explained his entire plan for ten minutes while the heroes politely waited. Truly a masterpiece "
     "of storytelling."),
    ("Negation (positive)",
     "This is not a bad movie at all. I expected nothing and was never bored; it isn't perfect, but I "
     "can't remember the last time a thriller kept me guessing this well."),
    ("Negation (negative)",
     "Not funny, not scary, and not nearly as clever as it thinks it is. I kept waiting for it to get "
     "going and it never did."),
    ("Mixed opinion",
     "The photography is stunning and the score is gorgeous, but the story drags badly in the middle and "
     "the ending feels rushed. Worth seeing for the visuals, not for the plot."),
    ("IMDB-style HTML",
     "Saw this at a small festival last spring.<br /><br />The lead actress carries every scene, and the "
     "seaside town feels lived in rather than built for the camera. A quiet little gem."),
)
