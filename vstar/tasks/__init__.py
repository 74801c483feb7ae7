"""Tasks: problems, prompts and checkers. ``get_task(name, options)`` builds one."""

from vstar.tasks.base import SPLITS, Problem, Task, Verdict
from vstar.tasks.registry import available_tasks, get_task

__all__ = ["SPLITS", "Problem", "Task", "Verdict", "available_tasks", "get_task"]
