"""The converter's orchestration: source meta -> plan -> episodes (thread pool) -> tar -> upload -> manifest.

Memory stays independent of dataset size: at most ``cfg.lookahead`` built episodes wait for the writer, the
index caches are bounded, and finished shards leave memory as files. Local disk holds at most
``cfg.max_staged_shards`` shards. A re-run skips shards whose completion record matches the plan and whose
size at the destination matches the record, so killing and re-running converges to the same bytes. Under the
CLI a SIGTERM/SIGINT stops the run at the next safe point (:mod:`lerobot_wds.convert.interrupt`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from lerobot_wds.convert.config import ConvertConfig
from lerobot_wds.convert.episode import FOOTER_CACHE, EpisodeSample, built_episodes
from lerobot_wds.convert.errors import ConvertError, EpisodeError
from lerobot_wds.convert.estimate import estimate_episodes
from lerobot_wds.convert.interrupt import Interrupted, signals_deferred
from lerobot_wds.convert.manifest_io import (
    WORK_DIR,
    PartManifest,
    ShardRecord,
    finalize,
    fingerprint,
    part_path,
    read_record,
)
from lerobot_wds.convert.metrics import StageTimes, release_free_memory
from lerobot_wds.convert.plan import ShardPlan, order_episodes, plan_shards, select_episodes, select_part
from lerobot_wds.convert.sink import LocalSink, Sink, open_sink
from lerobot_wds.convert.source import LeRobotSource, describe
from lerobot_wds.convert.staging import StagingArea, Uploader
from lerobot_wds.convert.tarwriter import ShardWriter
from lerobot_wds.core.format import MANIFEST_NAME, EpisodeExtent, Manifest, ShardInfo, shard_path
from lerobot_wds.core.peak_rss import PeakRss
from lerobot_wds.core.progress import Progress


@dataclass(frozen=True)
class ConvertSummary:
    """What a run did, with the numbers the final summary line and ``--stats-json`` report."""

    part: str
    episodes: int
    shards_written: int
    shards_resumed: int
    bytes_written: int
    skipped: int
    seconds: float
    peak_staging_bytes: int
    peak_rss_bytes: int  # the process's peak RSS during this conversion (see core.peak_rss.PeakRss)
    upload_retries: int
    manifest_written: bool
    start_rss_bytes: int = 0  # the process's RSS when the conversion started (imports, what ran before)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # thread-seconds per stage (convert.timing)
    episodes_resumed: int = 0  # episodes in the shards found complete at the destination
    mp4_indexes_parsed: int = 0  # source MP4 indexes parsed (each camera file once while the cache holds them)

    def line(self) -> str:
        if not self.shards_written and self.shards_resumed:  # a rerun of a finished part
            return (
                f"part {self.part}: already complete: {self.episodes_resumed} episodes in {self.shards_resumed} "
                f"shards (resumed {self.shards_resumed} shards, skipped {self.skipped} episodes), "
                "nothing to convert" + ("; manifest.json written" if self.manifest_written else "")
            )
        mb = self.bytes_written / 1e6
        secs = max(self.seconds, 1e-9)
        return (
            f"part {self.part}: {self.episodes} episodes -> {self.shards_written} shards ({mb:.1f} MB) in "
            f"{self.seconds:.1f} s: {mb / secs:.1f} MB/s, {self.episodes / secs:.1f} episodes/s; "
            f"resumed {self.shards_resumed} shards, skipped {self.skipped} episodes, "
            f"{self.upload_retries} upload retries; peak staging {self.peak_staging_bytes / 1e6:.1f} MB, "
            f"peak RSS {self.peak_rss_bytes / 1e6:.0f} MB ({self.start_rss_bytes / 1e6:.0f} MB before converting)"
            + ("; manifest.json written" if self.manifest_written else "")
            + f"; {self.mp4_indexes_parsed} MP4 indexes parsed"
            + _stages_line(self.stage_seconds)
        )

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _stages_line(seconds: dict[str, float]) -> str:
    spent = [f"{k.replace('_', ' ')} {v:.1f} s" for k, v in seconds.items() if v > 0]
    return f"; thread-seconds: {', '.join(spent)}" if spent else ""


def convert(cfg: ConvertConfig, *, rss: PeakRss | None = None) -> ConvertSummary:
    """Converts the shards of ``cfg``'s part; a single-part run also finalizes (writes ``manifest.json``).

    ``rss`` measures the summary's peak RSS; by default the process's, leaving its high-water mark alone (the
    caller's). The process's owner passes ``PeakRss(reset=True)`` to measure from the conversion's start.
    """
    t0 = time.perf_counter()
    rss = rss if rss is not None else PeakRss()
    times = StageTimes()
    source = LeRobotSource(
        cfg.source,
        cfg.source_options,
        footer_cache_size=FOOTER_CACHE,
        index_cache_bytes=cfg.index_cache_bytes,
        attempts=cfg.upload_attempts,
        backoff_s=cfg.retry_backoff_s,
        times=times,
    )
    sink = open_sink(cfg.dest, cfg.dest_options, attempts=cfg.upload_attempts, backoff_s=cfg.retry_backoff_s)
    source_desc = describe(source)
    finished = _check_existing_manifest(sink, source_desc, cfg)
    _copy_meta(source, sink)

    episodes = order_episodes(select_episodes(list(source.episodes), cfg.episodes), cfg.order, cfg.seed)
    shards = plan_shards(estimate_episodes(source, episodes, cfg.workers), cfg.target_shard_bytes)
    mine = select_part(shards, cfg.part_index, cfg.part_count)
    release_free_memory()  # planning's per-episode values are garbage now; the table's columns stay
    plan = {"source": source_desc, "options": cfg.output_options()}
    keys = {s.index: fingerprint({**plan, "shard": s.index, "episodes": list(s.episodes)}) for s in mine}

    done, todo = _resume(sink, mine, keys, cfg, finished)
    records: list[ShardRecord] = list(done.values())
    try:
        written, peak_staging = _stage_and_upload(source, sink, todo, keys, cfg, records)
        records.sort(key=lambda r: r.shard.path)
        part = PartManifest(
            part_index=cfg.part_index,
            part_count=cfg.part_count,
            planned_shards=len(shards),
            plan_key=fingerprint({**plan, "shards": [list(s.episodes) for s in shards]}),
            fps=source.fps,
            features=source.features,
            camera_keys=source.camera_keys,
            source=source_desc,
            options=cfg.output_options(),
            shards=[r.shard for r in records],
            skipped=[s for r in records for s in r.skipped],
        )
        sink.put_bytes(part.to_json_bytes(), part_path(cfg.part_index, cfg.part_count))
        if cfg.part_count == 1:
            finalize(sink, part_count=1)
            sink.remove_tree(WORK_DIR)  # a finished run's bookkeeping is all in manifest.json
    except Interrupted as e:  # SIGTERM/SIGINT under the CLI: say how far this part got
        raise Interrupted(e.signum, shards_done=len(records), shards_planned=len(mine)) from None
    return ConvertSummary(
        part=f"{cfg.part_index}/{cfg.part_count}",
        episodes=sum(len(s.episodes) for s in todo),
        shards_written=len(todo),
        shards_resumed=len(done),
        bytes_written=written,
        skipped=len(part.skipped),
        seconds=time.perf_counter() - t0,
        peak_staging_bytes=peak_staging,
        peak_rss_bytes=rss.peak_bytes(),
        start_rss_bytes=rss.start_bytes,
        upload_retries=getattr(sink, "retries", 0),
        manifest_written=cfg.part_count == 1,
        stage_seconds=times.as_dict(),
        episodes_resumed=sum(len(r.shard.episodes) for r in done.values()),
        mp4_indexes_parsed=source.indexes_parsed,
    )


def _check_existing_manifest(sink: Sink, source_desc: dict, cfg: ConvertConfig) -> Manifest | None:
    """Returns the manifest of a finished conversion of the same source and options, if DEST holds one."""
    data = sink.read_bytes(MANIFEST_NAME)
    if data is None:
        return None
    old = Manifest.from_json_bytes(data, where=f"{sink.url}/{MANIFEST_NAME}")
    differences = identity_differences(old.source, source_desc) + identity_differences(
        old.options, cfg.output_options(), prefix="--"
    )
    if differences:
        raise ConvertError(
            f"{sink.url} already holds a different conversion ({'; '.join(differences)}): rerun with what it "
            "was made from to resume it, or convert into another destination"
        )
    return old


def identity_differences(there: dict[str, Any], here: dict[str, Any], prefix: str = "") -> list[str]:
    """Names each key whose value differs, in sorted order: ``key: <at the destination> there, <now> here``."""
    names = {"url": "source", "info_sha256": "source meta/info.json", "episodes_sha256": "source episode table"}
    out = []
    for key in sorted(set(there) | set(here)):
        if there.get(key) != here.get(key):
            name = names.get(key) or prefix + key.replace("_", "-")
            out.append(f"{name}: {there.get(key)!r} there, {here.get(key)!r} here")
    return out


def _copy_meta(source: LeRobotSource, sink: Sink) -> None:
    sizes = source.file_sizes(source.meta_files, workers=4)
    for rel in source.meta_files:
        if sink.size(rel) != sizes[rel]:
            sink.put_bytes(source.read_bytes(rel), rel)


def _resume(
    sink: Sink, mine: list[ShardPlan], keys: dict[int, str], cfg: ConvertConfig, finished: Manifest | None
) -> tuple[dict[int, ShardRecord], list[ShardPlan]]:
    """Splits this part's shards into complete ones (record matches plan and destination) and the rest.

    A finished single-part run keeps no records: its manifest (same source and options, so the same plan)
    stands in for them.
    """
    from_manifest = _records_from_manifest(finished, mine, keys) if finished is not None else {}

    def complete(s: ShardPlan) -> ShardRecord | None:
        rec = read_record(sink, s.index) or from_manifest.get(s.index)
        if rec is None or rec.plan_key != keys[s.index]:
            return None
        if not rec.shard.episodes:
            return rec
        if sink.size(rec.shard.path) != rec.shard.bytes:
            return None
        if cfg.resume_check == "sha256" and sink.sha256(rec.shard.path) != rec.shard.sha256:
            return None
        return rec

    with ThreadPoolExecutor(cfg.workers) as pool:
        found = list(pool.map(complete, mine))
    done = {s.index: r for s, r in zip(mine, found, strict=True) if r is not None}
    return done, [s for s in mine if s.index not in done]


def _records_from_manifest(
    manifest: Manifest, mine: list[ShardPlan], keys: dict[int, str]
) -> dict[int, ShardRecord]:
    """The completion records a finished manifest implies for the planned shards whose episodes it accounts for."""
    listed = {s.path: s for s in manifest.shards}
    out = {}
    for plan in mine:
        path = shard_path(plan.index)
        skipped = [s for s in manifest.skipped if s.get("shard") == path]
        info = listed.get(path) or ShardInfo(path=path, bytes=0, sha256="", episodes=[], frames=0, extents=[])
        if sorted(info.episodes + [int(s["episode_index"]) for s in skipped]) == sorted(plan.episodes):
            out[plan.index] = ShardRecord(shard=info, skipped=skipped, plan_key=keys[plan.index])
    return out


def _stage_and_upload(
    source: LeRobotSource,
    sink: Sink,
    todo: list[ShardPlan],
    keys: dict[int, str],
    cfg: ConvertConfig,
    records: list[ShardRecord],
) -> tuple[int, int]:
    """Writes and uploads ``todo``'s shards, appending their records; returns (bytes written, peak staging).

    On any error or signal the queued work is dropped, the upload in flight finishes (its record is kept) and
    the staging directory is removed; neither cleanup step can itself be cut short by a signal.
    """
    with signals_deferred():  # a staging dir must never exist without its owner record
        staging = StagingArea(cfg.staging_dir, cfg.max_staged_shards)
    bars = _bars(cfg, todo, remote=not isinstance(sink, LocalSink))

    def done(record: ShardRecord) -> None:
        records.append(record)
        if "uploads" in bars:
            bars["uploads"].update(1)

    uploader = Uploader(sink, staging, on_done=done, times=source.times)
    try:
        written = _write_shards(source, todo, keys, cfg, staging, uploader, bars)
        uploader.close()
    except BaseException:
        with signals_deferred(), contextlib.suppress(Exception):  # the first error is the one reported
            uploader.close(wait_for_uploads=False)
        raise
    finally:
        with signals_deferred():
            staging.cleanup()
            for bar in bars.values():
                bar.close()
    return written, staging.peak_bytes


def _bars(cfg: ConvertConfig, todo: list[ShardPlan], remote: bool) -> dict[str, Progress]:
    """The progress that applies: episodes, bytes written (planned from estimates, corrected to the bytes
    of each shard as it closes, so it ends at 100%) and, for a remote destination only, uploads."""
    on = cfg.progress
    bars = {
        "episodes": Progress(sum(len(s.episodes) for s in todo), "convert", "episodes", enabled=on),
        "bytes": Progress(sum(s.est_bytes for s in todo), "convert written", "B", unit_scale=True, enabled=on),
    }
    if remote:  # a local destination is a rename, nothing to watch
        bars["uploads"] = Progress(len(todo), "convert uploads", "shards", enabled=on)
    return bars


def _write_shards(
    source: LeRobotSource,
    todo: list[ShardPlan],
    keys: dict[int, str],
    cfg: ConvertConfig,
    staging: StagingArea,
    uploader: Uploader,
    bars: dict[str, Progress],
) -> int:
    """Writes each shard of ``todo`` to staging and queues its upload; returns the bytes written."""
    pool = ThreadPoolExecutor(cfg.workers, thread_name_prefix="lerobot-wds-episode")
    built = built_episodes(pool, source, todo, cfg.lookahead, cfg.encode_settings())
    join = True
    try:
        return _write_all(source, todo, keys, cfg, staging, uploader, bars, built)
    except Interrupted:
        # builds only read the source and their results are dropped: a signal does not wait for the ones in
        # flight (a read sleeping between retries could hold the exit for many seconds)
        join = False
        raise
    finally:
        built.close()  # cancels queued builds when the writer stops early
        pool.shutdown(wait=join, cancel_futures=True)


def _settle(bar: Progress, n: float, overestimate: int) -> None:
    """Moves the bytes bar to ``n`` (the shards' real sizes so far) and takes the shard's misestimate off its
    total, so the bar ends at exactly 100%."""
    bar.total = (bar.total or 0) - overestimate
    bar.update_to(n)


def _write_all(
    source: LeRobotSource,
    todo: list[ShardPlan],
    keys: dict[int, str],
    cfg: ConvertConfig,
    staging: StagingArea,
    uploader: Uploader,
    bars: dict[str, Progress],
    built: Iterator[tuple[ShardPlan, int, Future[EpisodeSample]]],
) -> int:
    written = 0
    for shard in todo:
        name = shard_path(shard.index)
        staging.acquire()
        local = staging.path(f"shard-{shard.index:06d}")
        episodes: list[int] = []
        skipped: list[dict[str, object]] = []
        shard_start = bars["bytes"].n  # the bar's bytes before this shard
        with staging.open(local, what=name, expect_bytes=shard.est_bytes) as f:
            writer = ShardWriter(f, name=name, times=source.times)
            for _ in shard.episodes:
                _, ep, fut = next(built)
                try:
                    with source.times.timed("build_wait"):
                        sample = fut.result()
                except EpisodeError as e:
                    if cfg.on_error == "raise":
                        raise
                    skipped.append({"episode_index": ep, "reason": e.reason, "shard": name})
                else:
                    writer.add_sample(sample.key, sample.members)
                    episodes.append(ep)
                    bars["bytes"].update_to(f.tell() + shard_start)
                    staging.account(local.name, f.tell())
                bars["episodes"].update(1)
            size, sha = writer.close()
        _settle(bars["bytes"], shard_start + size, shard.est_bytes - size)
        staging.account(local.name, size)
        frames = sum(source.episodes[e].length for e in episodes)
        extents = [
            EpisodeExtent(e, source.episodes[e].length, off, n, digest)
            for e, (off, n, digest) in zip(episodes, writer.extents, strict=True)
        ]
        info = ShardInfo(
            path=name,
            bytes=size if episodes else 0,
            sha256=sha if episodes else "",
            episodes=episodes,
            frames=frames,
            extents=extents,
        )
        uploader.submit(local, ShardRecord(shard=info, skipped=skipped, plan_key=keys[shard.index]), shard.index)
        written += info.bytes
        release_free_memory()
    return written
