"""Gradient backends of the SGLD sampler: how its chains are computed, behind one interface (base.py).

autograd.py (the reference loop), fused.py (the hand-written gradient in ATen ops, swish_plan.py),
native.py (the whole step as C: native_src.py, native_bf16_src.py), cudagraph.py (CUDA graphs);
threaded.py runs the CPU ones on worker threads; select.py chooses one per model and device, racing
native against fused once per machine (race.py).
"""
