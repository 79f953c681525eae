"""Test and benchmark helpers, installed with the ``testing`` extra (``pip install "lerobot-wds[testing]"``).

Not part of the reader or converter: nothing in ``lerobot_wds.reader`` or ``lerobot_wds.convert`` imports it.

- :mod:`lerobot_wds.testing.synth`: synthetic LeRobot v3 datasets with identity-coded frames (needs PyAV).
- :mod:`lerobot_wds.testing.shards`: converted roots written directly (shard factory) for reader tests.
- :mod:`lerobot_wds.testing.http_server`: a loopback HTTP file server (ranges, listings, injected faults).
"""
