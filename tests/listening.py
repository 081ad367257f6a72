"""Calling a logger's points as a run does (the step in ``run.step``, a control that refuses requests)."""

from __future__ import annotations

from typing import Any

from genframe.contracts.listeners import Control


def start(logger: Any, run: Any) -> None:
    logger.on_run_start(run, Control(watching=True))


def log(logger: Any, run: Any, step: int, metrics: dict[str, float], images: dict[str, Any] | None = None) -> None:
    run.step = step
    logger.on_log(run, Control(watching=True), metrics, images or {})


def checkpoint(logger: Any, run: Any, path: Any, step: int) -> None:
    run.step = step
    logger.on_checkpoint(run, Control(watching=True), path)


def rollback(logger: Any, run: Any, step: int, reason: str) -> None:
    run.step = step
    logger.on_rollback(run, Control(watching=True), reason)


def end(logger: Any, run: Any, status: str) -> None:
    logger.on_run_end(run, Control(watching=True), status)
