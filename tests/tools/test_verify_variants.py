"""``verify --source --decode`` passes on a conversion of every standard fixture variant (B-frames, HEVC, ...)."""

from __future__ import annotations

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.pipeline import convert
from lerobot_wds.tools.verify.decode import pick_frames
from lerobot_wds.tools.verify.run import VerifyConfig, verify


def test_every_variant_verifies_with_decode_parity(lerobot_variant, tmp_path):
    fx = lerobot_variant
    dest = tmp_path / "out"
    convert(ConvertConfig(str(fx.root), str(dest), target_shard_bytes=30_000, progress=False))
    report = verify(VerifyConfig(str(dest), source=str(fx.root), decode_frames=4, progress=False))
    assert report.ok, report.to_text()
    assert (report.episodes, report.frames) == (len(fx.episodes), fx.total_frames)
    per_camera = sum(len(pick_frames(n, 4)) for n in fx.episode_lengths)
    assert report.decoded_frames == per_camera * len(fx.camera_keys)
