"""The core's own callbacks: policies any recipe can use, registered like any plugin's callbacks.

``divergence_guard``, ``evaluation`` and ``keep_best`` are every recipe's defaults; ``ema`` is opt-in.
"""
