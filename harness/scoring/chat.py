"""Chat templates for instruct models: the task's prompt as a user turn, the label word as the
start of the assistant's answer.

With `chat_template = true` a zero-shot task's prompt (review included) becomes the content of
one user message, after an optional system message and, with `fewshot_as_multiturn`, after its
demonstrations as user/assistant turns. The tokenizer's own template renders the conversation
with the generation prompt (the assistant header) at its end, so the prompt's suffix now holds
the end of the user turn and the assistant header: the fields are still the only parts truncated.
The header ends the rendered prompt, so label words are scored without their leading space
(" positive" -> "positive"): an answer starts a fresh line, not a word after a space.

The template's special tokens (e.g. `<|im_start|>`) are tokens of the prompt; a special-token
string inside a review stays plain text, as without a template (see `split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.backends.base import answer_word, label_words
from harness.errors import UserError
from tasks import Task
from tasks.fields import placeholders, split_at_fields


@dataclass(frozen=True)
class Rendered:
    """A rendered chat prompt split around its fields: `head` and `tail` hold the template's special
    tokens and are tokenized with them; `body`, a template with the prompt's placeholders, is plain text."""

    head: str
    body: str
    tail: str

    @property
    def text(self) -> str:
        """The whole rendered prompt with its placeholders."""
        return self.head + self.body + self.tail


def messages(task: Task) -> list[dict[str, str]]:
    """The conversation for `task`: system message, demonstration turns, then the prompt as a user turn."""
    out = [{"role": "system", "content": task.system_prompt}] if task.system_prompt else []
    for user, answer in task.chat_turns:
        out += [{"role": "user", "content": user}, {"role": "assistant", "content": answer_word(answer)}]
    return out + [{"role": "user", "content": task.prompt}]


def render(task: Task, tokenizer: Any, model: str = "") -> Rendered:
    """The task's prompt in the tokenizer's chat template, ending with the assistant header."""
    if not getattr(tokenizer, "chat_template", None):
        who = model or getattr(tokenizer, "name_or_path", "") or "this model"
        raise UserError(f"-T chat_template=true: the tokenizer of {who} has no chat template; use an instruct "
                        f"model that has one, or drop -T chat_template")
    text = str(tokenizer.apply_chat_template(messages(task), tokenize=False, add_generation_prompt=True))
    if placeholders(text) != placeholders(task.prompt):
        raise UserError(f"task {task.name!r}: the chat template of {tokenizer.name_or_path or 'the model'} does not "
                        f"keep the user message as it is (placeholders {placeholders(text)}, prompt's "
                        f"{placeholders(task.prompt)})")
    return split(text, tokenizer)


def split(text: str, tokenizer: Any) -> Rendered:
    """Cut the rendered prompt at the last special token before its first field and the first after its last."""
    before, fields, after = split_at_fields(text)
    specials = [t for t in getattr(tokenizer, "added_tokens_encoder", {}) if t]
    cut_head = max((before.rfind(t) + len(t) for t in specials if t in before), default=0)
    cut_tail = min((after.find(t) for t in specials if t in after), default=len(after))
    return Rendered(before[:cut_head], before[cut_head:] + fields + after[:cut_tail], after[cut_tail:])


def record(task: Task, rendered: Rendered) -> dict[str, Any]:
    """What results.json records: the exact rendered prompt and the label words scored after it."""
    return {"rendered_prompt": rendered.text, "label_words": list(label_words(task)),
            "system_prompt": task.system_prompt, "fewshot_as_multiturn": task.fewshot_as_multiturn}
