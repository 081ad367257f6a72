"""Small helpers with no knowledge of runs or models: atomic writes, reproducible kernels, OpenMP
threads, seeds and devices, signals, pictures, TOML writing, deprecations. Beside the contracts at the
bottom of the house.
"""
