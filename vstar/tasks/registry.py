"""Task names -> classes, imported lazily so a task's heavy dependencies load only when used."""

from __future__ import annotations

import difflib
import importlib
from typing import Any, Mapping

from vstar.errors import VstarError
from vstar.tasks.base import Task

# name -> "module:ClassName"
_TASKS = {
    "embedded": "vstar.tasks.embedded:EmbeddedTask",
    "gsm8k": "vstar.tasks.gsm8k:GSM8KTask",
    "math500": "vstar.tasks.math500:MathTask",
    "mbpp": "vstar.tasks.mbpp:MBPPTask",
    "humaneval": "vstar.tasks.humaneval:HumanEvalTask",
    "jsonl": "vstar.tasks.jsonl:JsonlTask",
}


def available_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, options: Mapping[str, Any] | None = None) -> Task:
    return get_task_class(name)(options)


def get_task_class(name: str) -> type[Task]:
    if name not in _TASKS:
        hint = difflib.get_close_matches(name, _TASKS, n=1)
        extra = f" Did you mean '{hint[0]}'?" if hint else ""
        raise VstarError(
            f"task.name: unknown task '{name}'. Expected one of: {', '.join(available_tasks())}.{extra}"
        )
    module_name, class_name = _TASKS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
