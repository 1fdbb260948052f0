"""Fine-tuning: settings, data, the `Trainer`, LoRA, the plan and time estimate, the output folder, the model card."""
