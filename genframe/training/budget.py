"""``trainer.budget_minutes``: a run that fixes its length in steps from the speed of its first steps.

The run times its first ``trainer.budget_probe_steps`` steps (the first quarter of them, kernel builds and
first-touch allocations, not counted), then fixes its length: the steps already taken plus as many more as
the minutes left hold at that speed, within the epochs' bound. The length is kept in the loop's saved
counters (``budget_steps``), so a resume and a rollback keep it, and under torchrun every process takes the
main process's. Minutes count training steps alone, as ``trainer.max_minutes`` does.
"""

from __future__ import annotations

from typing import Any

from genframe.training import distributed


class Budget:
    """One run's budget in minutes (inactive without ``trainer.budget_minutes``, or with ``trainer.max_steps``)."""

    def __init__(self, trainer_config: Any, loop: dict[str, Any], world: Any) -> None:
        self.minutes = trainer_config.budget_minutes if trainer_config.max_steps is None else None
        self.probe = trainer_config.budget_probe_steps
        self.skip = max(1, self.probe // 4)
        self.loop, self.world = loop, world
        self.start: int | None = None  # the step this process began timing from
        self.mark: float | None = None  # the training seconds once the warm-up steps were done

    @property
    def pending(self) -> bool:
        """Whether the run's length is still to be fixed."""
        return self.minutes is not None and "budget_steps" not in self.loop

    def restart(self) -> None:
        """A rollback went back to a checkpoint: the steps thrown away do not count towards the timing."""
        self.start = self.mark = None

    def after_step(self) -> int | None:
        """Called after each step: the run's length, the once it is fixed, else None."""
        if not self.pending:
            return None
        step, seconds = self.loop["step"], self.loop["train_seconds"]
        if self.start is None:  # the first step here (or since a rollback)
            self.start, self.mark = step - 1, None
        done = step - self.start
        if done == self.skip:
            self.mark = seconds
        if done < self.probe or self.mark is None:
            return None
        per_step = (seconds - self.mark) / (done - self.skip)
        steps = steps_within(self.minutes, step, seconds, per_step)
        if self.world.active:  # every process the main one's length: they stop together
            steps, per_step = distributed.from_main((steps, per_step), self.world)
        self.loop.update(budget_steps=steps, budget_seconds_per_step=round(per_step, 6), budget_minutes=self.minutes)
        return steps

    def line(self, total_steps: int) -> str:
        """What the run says once its length is fixed."""
        per_step, fixed = self.loop["budget_seconds_per_step"], self.loop["budget_steps"]
        capped = f" (the epochs' bound; the minutes held {fixed})" if total_steps < fixed else ""
        over = " (the budget was used up while timing)" if fixed <= self.loop["step"] else ""
        return (f"trainer.budget_minutes={self.minutes:g}: {per_step:.4g} s a step over steps "
                f"{self.start + self.skip + 1}-{self.start + self.probe} here, so {total_steps} steps in all"
                f"{capped}{over} (recorded in the checkpoint: a resume keeps them)")


def budget_steps_on_resume(trainer_config: Any, loop: dict[str, Any]) -> tuple[int | None, str | None]:
    """The length a resumed budget run keeps (None: not fixed yet), and a line to say when a new
    ``trainer.budget_minutes`` changed it: the recorded speed gives the steps the new minutes hold."""
    if "budget_steps" not in loop:
        return None, None
    minutes, recorded = trainer_config.budget_minutes, loop.get("budget_minutes")
    if recorded is None or minutes == recorded or not loop.get("budget_seconds_per_step"):
        return loop["budget_steps"], None
    steps = steps_within(minutes, loop["step"], loop["train_seconds"], loop["budget_seconds_per_step"])
    loop.update(budget_steps=steps, budget_minutes=minutes)
    return steps, (f"trainer.budget_minutes={minutes:g} (was {recorded:g}): {steps} steps in all at the recorded "
                   f"{loop['budget_seconds_per_step']:.4g} s a step")


def steps_within(minutes: float, step: int, seconds: float, per_step: float) -> int:
    """The run's length: the steps taken plus as many more as the minutes left hold at ``per_step`` seconds."""
    return step + max(0, int((60 * minutes - seconds) / per_step)) if per_step > 0 else step
