"""LoRA fine-tuning through `peft`: low-rank adapters on the attention projections.

`wrap` turns the model `load_trainable` built into a `PeftModel` whose only trainable
weights are the adapters (and, for the classifier objective, the new classification head,
which starts random and must learn). `merged` folds the adapters back into the weights, so
the saved checkpoint is a plain folder that `tenser run`, the demo and the report load like
any other: no adapter files, no base model to find at load time.
"""

from __future__ import annotations

from typing import Any

from harness.errors import UserError

# Attention projections per architecture (`config.model_type`): the LoRA paper's choice.
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn", "c_proj"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "phi3": ("qkv_proj", "o_proj"),
    "gpt_neox": ("query_key_value", "dense"),
    "opt": ("q_proj", "k_proj", "v_proj", "out_proj"),
}
HEADS = ("score", "classifier")  # a fresh classification head trains in full


def targets(model: Any, given: tuple[str, ...], name: str) -> list[str]:
    """The module names to adapt: `given`, or the architecture's default; each must exist in the model."""
    kind = str(getattr(model.config, "model_type", ""))
    chosen = list(given) or list(DEFAULT_TARGETS.get(kind, ()))
    if not chosen:
        raise UserError(f"{{lora_r}}: no default LoRA target modules for {name} ({kind or 'unknown'} architecture); "
                        f"name them with {{lora_targets}}, e.g. {{lora_targets}} q_proj,v_proj", param="lora_r",
                        mentions=("lora_targets",))
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in chosen if t not in present]
    if missing:
        raise UserError(f"{{lora_targets}} {','.join(chosen)}: {name} has no module named {missing[0]!r}; "
                        f"pick from its linear layers (e.g. {', '.join(DEFAULT_TARGETS.get(kind, ('q_proj',)))})",
                        param="lora_targets")
    return chosen


def wrap(model: Any, *, r: int, alpha: int, dropout: float, target_modules: tuple[str, ...], name: str,
         classifier: bool) -> Any:
    """`model` with LoRA adapters of rank `r`; only the adapters (and a classifier's head) train."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("{lora_r} needs peft; install it with `pip install 'tenser[lora]'` (or `pip install peft`)",
                        param="lora_r") from None
    hidden = getattr(model.config, "hidden_size", None)
    if isinstance(hidden, int) and r > hidden:  # past the hidden size a rank adds parameters, not expressiveness
        raise UserError(f"{{lora_r}} {r}: more than {name}'s hidden size ({hidden}); LoRA ranks are usually 4 to 64",
                        param="lora_r")
    heads = [h for h in HEADS if hasattr(model, h)] if classifier else []
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets(model, target_modules,
                        name), modules_to_save=heads or None, bias="none",
                        fan_in_fan_out=getattr(model.config, "model_type", "") == "gpt2")  # GPT-2's Conv1D
    return get_peft_model(model, config)


def is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def unwrapped(model: Any) -> Any:
    """The transformers model inside a PeftModel (adapters active, in place); any other model as is."""
    return model.get_base_model() if is_peft(model) else model


def merged(model: Any) -> Any:
    """A plain transformers model with the adapters folded into its weights (a PeftModel is consumed)."""
    return model.merge_and_unload() if is_peft(model) else model


def describe(model: Any) -> dict[str, Any]:
    """What training_log.json records of a PeftModel's adapters."""
    config = model.peft_config["default"]
    return {"r": config.r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
            "target_modules": sorted(config.target_modules), "modules_to_save": sorted(config.modules_to_save or []),
            "saved": "merged into the weights (a plain checkpoint folder)"}
