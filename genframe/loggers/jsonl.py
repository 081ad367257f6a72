"""JSON-lines metrics: one object per logged step in ``RUN_DIR/metrics.jsonl``, flushed as written."""

from __future__ import annotations

import json
import math
import time

from genframe.contracts.listeners import Logger
from genframe.util.atomic import atomic_write_text

METRICS_NAME = "metrics.jsonl"


class JsonlLogger(Logger):
    """Appends metrics; on resume or rollback, drops lines logged after the checkpoint: no repeats."""

    def _keep_until(self, step: int) -> None:
        """Drop records after ``step`` (and a line cut short by a crash), atomically."""
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def _open(self) -> None:
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in run_end

    def on_run_start(self, run, control) -> None:
        self.path = run.run_dir / METRICS_NAME
        if run.resumed and run.purpose == "train" and self.path.exists():  # an eval only appends
            self._keep_until(run.step)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def on_rollback(self, run, control, reason) -> None:
        step = run.step
        self.handle.close()
        self._keep_until(step)
        self._open()
        self._write({"step": step, "epoch": run.epoch, "time": round(time.time(), 3), "event": "rollback",
                     "reason": reason})

    def _write(self, record: dict) -> None:
        self.handle.write(json.dumps(record) + "\n")
        self.handle.flush()

    def on_log(self, run, control, metrics, images) -> None:
        step = run.step
        if not metrics:
            return
        record = {"step": step, "epoch": run.epoch, "time": round(time.time(), 3)}
        record.update({k: (v if math.isfinite(v) else str(v)) for k, v in metrics.items()})
        self._write(record)

    def on_run_end(self, run, control, status) -> None:
        self.handle.close()
