"""Proof of the remux core: for every fixture variant, episode and camera, the mini-MP4 decodes to
exactly the source's frames at the episode's timestamps (same decoder, bit for bit)."""

from __future__ import annotations

import fsspec
import numpy as np
import torch
from torchcodec.decoders import VideoDecoder

from lerobot_wds.convert.errors import Mp4Error
from lerobot_wds.convert.mp4 import cut_episode, file_reader, parse_track_index
from lerobot_wds.convert.mp4.cut import TOLERANCE_FRAMES, plan_cut
from lerobot_wds.testing.synth import read_identity


def test_mini_mp4_frames_equal_source_frames(lerobot_variant):
    variant = lerobot_variant
    fs = fsspec.filesystem("file")
    indexes, decoders = {}, {}
    checked = 0
    for ep in variant.episodes:
        for cam, video in ep.videos.items():
            path = str(video.path)
            if path not in indexes:
                read, size = file_reader(fs, path)
                indexes[path] = (parse_track_index(read, size, name=path), read)
                decoders[path] = VideoDecoder(path, seek_mode="exact")
            index, read = indexes[path]
            where = f"{path} episode {ep.index} camera {cam}"
            clip = cut_episode(
                index,
                read,
                from_timestamp=video.from_timestamp,
                to_timestamp=video.to_timestamp,
                fps=variant.fps,
                expected_frames=ep.length,
                where=where,
            )
            mini = VideoDecoder(clip.data, seek_mode="exact")
            assert mini.metadata.num_frames == clip.frames == clip.lead_in + ep.length + clip.trail, where
            assert (clip.codec, clip.width, clip.height) == (
                variant.codec,
                *variant.camera_sizes[cam],
            )
            got = mini.get_frames_at([clip.lead_in + k for k in range(ep.length)])
            # query the source mid-frame: from_timestamp + k / fps can round to the previous frame
            times = [video.from_timestamp + (k + 0.5) / variant.fps for k in range(ep.length)]
            ref = decoders[path].get_frames_played_at(times)
            assert torch.equal(got.data, ref.data), f"{where}: decoded pixels differ"
            expected_pts = clip.pts_offset_s + np.arange(ep.length) / variant.fps
            np.testing.assert_allclose(got.pts_seconds.numpy(), expected_pts, atol=1e-3, err_msg=where)
            ids = [read_identity(f) for f in got.data]
            assert ids == [(ep.index, k) for k in range(ep.length)], where
            checked += 1
    assert checked == len(variant.episodes) * len(variant.camera_keys)


def test_continuous_layout_needs_lead_in(_lerobot_fixture_cache):
    """Long-GOP episodes that start mid-GOP are cut from the previous keyframe and record the lead-in."""
    fx = _lerobot_fixture_cache("h264_continuous")
    fs = fsspec.filesystem("file")
    leads = []
    for ep in fx.episodes:
        video = ep.videos[fx.camera_keys[0]]
        read, size = file_reader(fs, str(video.path))
        index = parse_track_index(read, size, name=str(video.path))
        clip = cut_episode(
            index,
            read,
            from_timestamp=video.from_timestamp,
            to_timestamp=video.to_timestamp,
            fps=fx.fps,
            expected_frames=ep.length,
            where=str(video.path),
        )
        leads.append(clip.lead_in)
    assert leads[0] == 0 and any(n > 0 for n in leads[1:]), leads


def _scan_cut(index, lo: float, hi: float) -> tuple[list[int], int]:
    """A pass over every sample: the decode-order samples presented in [lo, hi) and the last keyframe at or
    before the first of them (what plan_cut finds by binary search)."""
    pts = index.pts()
    members = np.flatnonzero((pts >= lo) & (pts < hi))
    keys = np.flatnonzero(index.keyframes[: int(members.min()) + 1]) if members.size else np.zeros(0, int)
    return members.tolist(), int(keys[-1]) if keys.size else -1


def test_plan_cut_finds_what_a_scan_of_the_file_finds(lerobot_variant):
    """For every episode and camera, and windows shifted by fractions of a frame: the samples and keyframe
    that plan_cut's binary searches choose are those of a pass over the whole file."""
    variant = lerobot_variant
    fs = fsspec.filesystem("file")
    compared = 0
    for ep in variant.episodes:
        for video in ep.videos.values():
            path = str(video.path)
            read, size = file_reader(fs, path)
            index = parse_track_index(read, size, name=path)
            for shift in (0.0, 0.3 / variant.fps, -0.7 / variant.fps):
                tol = TOLERANCE_FRAMES * index.timescale / variant.fps
                lo = (video.from_timestamp + shift) * index.timescale - tol
                hi = (video.to_timestamp + shift) * index.timescale - tol
                members, key = _scan_cut(index, lo, hi)
                try:
                    rng = plan_cut(
                        index,
                        from_timestamp=video.from_timestamp + shift,
                        to_timestamp=video.to_timestamp + shift,
                        fps=variant.fps,
                        expected_frames=len(members),
                        where=path,
                    )
                except Mp4Error as e:
                    assert "frames are not spaced" in str(e) or "presents before" in str(e) or not members, e
                    continue
                pts = index.pts()
                first_pts = int(pts[members].min())
                assert (rng.stop, rng.first_frame_pts) == (members[-1] + 1, first_pts)
                # open GOP: when the keyframe presents after the episode's first frame, an earlier one is taken
                assert rng.start == key if pts[key] <= first_pts else rng.start < key
                compared += 1
    assert compared >= len(variant.episodes)
