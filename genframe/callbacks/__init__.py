"""The core's callbacks: divergence guard, evaluation schedule, keep-best, EMA. The base class and
its control surface are contracts (``genframe.contracts.listeners``).
"""

from genframe.util.lazy import names_from

# ``from genframe.callbacks import Callback, Control`` keeps working
__getattr__ = names_from("genframe.contracts.listeners", __name__)
