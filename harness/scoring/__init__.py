"""Text to label probabilities over one path: encoding, chat templates, few-shot, calibration, prompt variants, `predict`, collecting records, the runner."""
