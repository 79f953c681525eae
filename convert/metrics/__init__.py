"""What a conversion measures about itself: seconds per stage (:class:`StageTimes`), and handing freed memory
back to the system between shards (:func:`release_free_memory`)."""

from lerobot_wds.convert.metrics.memory import release_free_memory
from lerobot_wds.convert.metrics.timing import STAGES, StageTimes

__all__ = ["STAGES", "StageTimes", "release_free_memory"]
