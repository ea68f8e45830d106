"""Zero-shot evaluation tasks (JSONL format) for the shipped ``evaluate`` metrics."""

from .tasks import *  # noqa: F403
from .tasks import __all__  # noqa: F401
