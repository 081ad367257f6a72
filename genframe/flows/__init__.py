"""Flow-matching pieces any family may share: the straight probability path, its time draws and mini-batch
optimal-transport pairing (``paths``), fixed-step and adaptive ODE solvers (``solvers``), and a velocity
model's log-likelihood by the probability-flow ODE with Hutchinson's trace estimate (``likelihood``).
They know no run and no plugin; plugins reach them through the public names ``genframe`` exports."""
