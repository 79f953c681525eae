"""Test and benchmark helpers, installed with the ``testing`` extra (``pip install "lerobot-wds[testing]"``).

Not part of the reader or converter: nothing in ``lerobot_wds.reader`` or ``lerobot_wds.convert`` imports it.

- :mod:`lerobot_wds.testing.synth`: synthetic LeRobot v3 datasets with identity-coded frames (needs PyAV).
- :mod:`lerobot_wds.testing.reencode`: a LeRobot root copied with every video re-encoded (long-GOP H.264
  benchmark variants: ``python -m lerobot_wds.testing.reencode SRC DST --gop 250 --bframes 2``).
- :mod:`lerobot_wds.testing.shards`: converted roots written directly (shard factory) for reader tests.
- :mod:`lerobot_wds.testing.http_server`: a loopback HTTP file server (ranges, listings, injected faults:
  503 bursts, bodies cut, reset or stalled mid-transfer, restarts on the same port).
- :mod:`lerobot_wds.testing.s3`: s3fs options for a loopback S3 endpoint and a fault proxy in front of one
  (503 bursts, PUTs held mid-body, GETs reset or stalled mid-body).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lerobot_wds.core.lazy_exports import lazy_exports

_EXPORTS = {
    "LeRobotSpec": "lerobot_wds.testing.synth",
    "make_dataset": "lerobot_wds.testing.synth",
    "read_identity": "lerobot_wds.testing.synth",
    "RootSpec": "lerobot_wds.testing.shards",
    "make_root": "lerobot_wds.testing.shards",
    "LoopbackHTTPServer": "lerobot_wds.testing.http_server",
    "ServeConfig": "lerobot_wds.testing.http_server",
    "S3FaultProxy": "lerobot_wds.testing.s3",
}
__all__ = [
    "LeRobotSpec",
    "LoopbackHTTPServer",
    "RootSpec",
    "S3FaultProxy",
    "ServeConfig",
    "make_dataset",
    "make_root",
    "read_identity",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lerobot_wds.testing.http_server import LoopbackHTTPServer, ServeConfig
    from lerobot_wds.testing.s3 import S3FaultProxy
    from lerobot_wds.testing.shards import RootSpec, make_root
    from lerobot_wds.testing.synth import LeRobotSpec, make_dataset, read_identity
