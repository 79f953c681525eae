"""``LeRobotWdsDataset``: the torch IterableDataset over a converted root, yielding LeRobotDataset samples.

The object is a picklable recipe (root, manifest, options); everything stateful (shard fetches, decoders,
caches, random generators) is created in ``__iter__`` inside each DataLoader worker. Per epoch, every
(rank, worker) reads its planned shards (see :mod:`splitting`) and yields exactly ``quota`` samples.

Launchers: with torchrun / ``torch.distributed`` / ``accelerate launch`` the rank and world size are
detected (process group, else RANK / WORLD_SIZE; or pass ``rank`` and ``world_size``). With Accelerate, do
NOT pass this DataLoader to ``accelerator.prepare``: for an IterableDataset it either dispatches every batch
from rank 0 (``dispatch_batches=True``) or wraps it in ``IterableDatasetShard`` so every rank reads everything
and keeps a slice. This dataset already gives each rank its own shards and an equal sample count; move
batches with ``accelerate.utils.send_to_device(batch, accelerator.device)``. Call ``set_epoch(n)`` before
each epoch (it also reaches persistent workers).

Resume: ``state_dict()`` counts samples yielded per worker in this process (``num_workers=0``, or inside
workers as torchdata's ``StatefulDataLoader`` calls it); with a plain DataLoader use
``loader_state_dict(batches_seen, batch_size, num_workers)``. ``load_state_dict`` makes the next iteration of
that epoch skip what was consumed, before any decoding, and yield the rest exactly as the uninterrupted run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

import torch

from lerobot_wds.core.errors import OnError
from lerobot_wds.core.redact import redact_url
from lerobot_wds.reader.assembling.batch_slots import SlotRing
from lerobot_wds.reader.assembling.config import AssembleConfig
from lerobot_wds.reader.assembling.sample import SampleSpec
from lerobot_wds.reader.assembling.worker_memory import tune_worker_malloc
from lerobot_wds.reader.board import DecodePublisher, ReaderBoard, nested
from lerobot_wds.reader.decoding.decode import DecodeConfig
from lerobot_wds.reader.decoding.frames import FramePool
from lerobot_wds.reader.epoch_progress import EpochProgress
from lerobot_wds.reader.errors import OptionError
from lerobot_wds.reader.fetching.cache import CacheConfig, open_cache
from lerobot_wds.reader.fetching.fetch import ReadCounters, StreamConfig
from lerobot_wds.reader.meta import load_meta, local_meta_root
from lerobot_wds.reader.on_error import ErrorCounter
from lerobot_wds.reader.options import (
    check_bool,
    check_cache,
    check_delta_timestamps,
    check_episodes,
    check_int,
    check_optional_int,
    check_real,
)
from lerobot_wds.reader.pipeline import ReaderOptions, reader_memory, reader_stream
from lerobot_wds.reader.planning.epoch import SharedEpoch
from lerobot_wds.reader.planning.resume import EpochPlanner
from lerobot_wds.reader.planning.splitting import SlotPlan, Uneven, episode_selection
from lerobot_wds.reader.planning.topology import (
    Topology,
    detect_rank_world,
    detect_ranks_per_node,
    detect_topology,
)
from lerobot_wds.reader.root import open_root
from lerobot_wds.reader.scheduling.mixing import DEFAULT_BATCH, mix_target, warn_share_bounds_mix
from lerobot_wds.reader.scheduling.windows import Preset, delta_indices, preset_delta_timestamps

log = logging.getLogger(__name__)
_HINTED: list[str] = []  # hints already logged in this process


def hint_ranged(readers: int, shards: int) -> None:
    """Says once per process that readers outnumber shards, so some reads are byte ranges of a shard."""
    if "ranged" not in _HINTED:
        _HINTED.append("ranged")
        log.info(
            "%d readers (ranks x workers) share %d shards: readers fetch byte ranges of episodes instead of "
            "whole shards (one GET per run of consecutive episodes)",
            readers,
            shards,
        )


def hint_batching() -> None:
    """Says once per process that per-sample iteration leaves the in-place batching path unused."""
    if "batching" not in _HINTED:
        _HINTED.append("batching")
        log.info(
            "LeRobotWdsDataset yields single samples, so DataLoader's collate copies every image once more; "
            "lerobot_wds.dataloader(root, batch_size=...) (or LeRobotWdsDataset(..., batch_size=...) with "
            "DataLoader(batch_size=None)) builds batches in place, without that copy; per sample, give the "
            "DataLoader's batch size as LeRobotWdsDataset(..., mix_batch=N) (default 16) so every batch mixes N "
            "distinct episodes"
        )


def warn_source_order(root: str) -> None:
    """Says once per process and root that its episodes lie in shards in recording order (``--order source``)."""
    key = f"order:{redact_url(root)}"
    if key not in _HINTED:
        _HINTED.append(key)
        log.warning(
            "%s was converted with --order source: its shards hold episodes in recording order, so a worker reads "
            "runs of consecutive episodes (often one recording session) and its batches mix only those; convert "
            "with --order shuffle (the default) for batches drawn across the dataset",
            redact_url(root),
        )


class LeRobotWdsDataset(torch.utils.data.IterableDataset):
    """Streams a converted root as LeRobotDataset-identical frame samples.

    Args:
        source: converted root, a local path or any fsspec URL (``s3://``, ``http://``, ``hf://``...).
        delta_timestamps: ``{key: [seconds, ...]}`` windows like LeRobotDataset; exclusive with ``preset``.
        preset: "single" (one frame of every camera) or "sarm" (SARM's 13 steps for every camera and state).
        shuffle: shuffle shards, episodes and frames by (seed, epoch); False yields episode and frame order.
        seed: base seed of every random choice.
        return_uint8: images as uint8 [0,255] instead of float32 [0,1] (lerobot's option of the same name).
        tolerance_s: how far a delta may be from a multiple of 1/fps (lerobot's default 1e-4).
        episode_buffer: episodes held in a shuffle buffer ahead of the pool (compressed); 0 (default): the
            pool of ``active_episodes`` open episodes is the shuffle, and the first batch waits for no buffer.
        active_episodes: most episodes open at once in the anchor pool; None (default): 64, or the mixing
            target's 1.5 per batch sample when more. Every batch draws its samples from distinct open episodes
            while there are enough (the pool is also bounded by ``DecodeConfig.memory_limit_bytes`` and the
            budgets, see :mod:`admission`); a bound that holds fewer than the batch size is said once.
        uneven: "pad" (repeat a few frames) or "trim" so every rank and worker yields the same count.
        on_error: "raise" or "skip" (count and log) on corrupt shards or members.
        decode: decoder / frame-cache budgets. stream: retries, read-ahead, checksum, storage options.
        assemble: how batches are built and handed out (shared-memory batch slots, worker malloc tuning).
        rank, world_size: override detection (both or neither).
        batch_size: yield collated batches of this many samples instead of samples (use
            ``DataLoader(ds, batch_size=None)``): images are written straight into the batch, which a
            DataLoader worker builds in a reused shared-memory slot (see :mod:`batch_slots`), saving DataLoader's
            collate copy and fresh shared memory per batch. The last batch of an epoch may be short.
        mix_batch: on the per-sample path (``batch_size=None``), the batch size the DataLoader collates (default
            16): every run of that many samples of a worker, which is what one DataLoader batch holds, draws
            from distinct episodes, and the mixing target and ``stats()["mixing"]`` are about it.
        episodes: read only these episode indices (lerobot's option); planning, splitting and per-rank quotas
            follow from their frames. None: every episode.
        image_transforms: lerobot's ``image_transforms``: called on every camera's image tensor of every sample
            after decoding ([C,H,W], or [T,C,H,W] for a window; uint8 with ``return_uint8``). With
            ``batch_size`` it runs per sample on the batch and must keep shape and dtype.
        meta_cache_dir: where a remote root's ``meta/`` is fetched once for :attr:`meta` (default
            ``$LEROBOT_WDS_META_CACHE`` or ``~/.cache/lerobot_wds/meta``).
        cache_dir, cache_limit: a node-local cache of episode bytes in ``cache_dir`` holding at most
            ``cache_limit`` bytes, shared by every process of the node (see :mod:`cache`, docs/cache.md); with
            it, every node reads the same episodes every epoch (:mod:`nodes`). None (default): no cache.
        ranks_per_node: ranks sharing a node (and its cache); default ``$LOCAL_WORLD_SIZE`` (torchrun), else 1.
    """

    def __init__(
        self,
        source: str,
        *,
        delta_timestamps: Mapping[str, Sequence[float]] | None = None,
        preset: Preset | None = None,
        shuffle: bool = True,
        seed: int = 0,
        return_uint8: bool = False,
        tolerance_s: float = 1e-4,
        episode_buffer: int = 0,
        active_episodes: int | None = None,
        uneven: Uneven = "pad",
        on_error: OnError = "raise",
        decode: DecodeConfig | None = None,
        stream: StreamConfig | None = None,
        assemble: AssembleConfig | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        batch_size: int | None = None,
        mix_batch: int | None = None,
        episodes: Sequence[int] | None = None,
        image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None,
        meta_cache_dir: str | None = None,
        cache_dir: str | None = None,
        cache_limit: int | None = None,
        ranks_per_node: int | None = None,
    ) -> None:
        super().__init__()
        delta_timestamps = check_delta_timestamps(delta_timestamps)
        seed = check_int("seed", seed, 0)
        batch_size = check_optional_int("batch_size", batch_size, 1)
        active_episodes = check_optional_int("active_episodes", active_episodes, 1)
        mix_batch = check_optional_int("mix_batch", mix_batch, 1)
        if mix_batch is not None and batch_size is not None:
            raise OptionError(
                f"mix_batch={mix_batch} is the DataLoader's batch size on the per-sample path; with batch_size="
                f"{batch_size} the dataset builds the batches and mixes them: give one of the two"
            )
        episode_buffer = check_int("episode_buffer", episode_buffer, 0)
        shuffle, return_uint8 = check_bool("shuffle", shuffle), check_bool("return_uint8", return_uint8)
        tolerance_s = check_real("tolerance_s", tolerance_s, 0.0)
        rank = check_optional_int("rank", rank, 0)
        world_size = check_optional_int("world_size", world_size, 1)
        if uneven not in get_args(Uneven):
            raise OptionError(f"uneven={uneven!r}; expected one of {list(get_args(Uneven))}")
        if delta_timestamps is not None and preset is not None:
            raise OptionError("give delta_timestamps or preset, not both")
        if preset is not None and preset not in get_args(Preset):
            raise OptionError(f"preset={preset!r} is not a preset; expected one of {list(get_args(Preset))}")
        if (rank is None) != (world_size is None):
            raise OptionError(
                f"give both rank and world_size or neither (got rank={rank}, world_size={world_size})"
            )
        if image_transforms is not None and not callable(image_transforms):
            raise TypeError(f"image_transforms must be callable or None, got {type(image_transforms).__name__}")
        ErrorCounter(on_error)  # validates the policy name
        cache = check_cache(cache_dir, cache_limit)
        ranks_per_node = check_optional_int("ranks_per_node", ranks_per_node, 1)
        self.ranks_per_node = ranks_per_node if ranks_per_node is not None else detect_ranks_per_node()
        self.source = str(source)
        self.stream_config = stream or StreamConfig()
        if cache is not None:
            open_cache(cache)  # a directory that cannot hold the cache is an OptionError here, naming it
            self.stream_config = replace(self.stream_config, cache=cache)
        self.decode_config = decode or DecodeConfig()
        self.assemble_config = assemble or AssembleConfig()
        opened = open_root(self.source, self.stream_config)
        self.manifest = opened.manifest
        if self.manifest.options.get("order") == "source":
            warn_source_order(self.source)
        self.tasks = opened.tasks
        self.fps = self.manifest.fps
        self.camera_keys = tuple(self.manifest.camera_keys)
        if preset is not None:
            delta_timestamps = preset_delta_timestamps(preset, self.camera_keys, self.fps)
        self.delta_timestamps = dict(delta_timestamps) if delta_timestamps is not None else None
        deltas = {}
        if self.delta_timestamps is not None:
            deltas = delta_indices(self.delta_timestamps, self.fps, list(self.manifest.features), tolerance_s)
        self.sample_spec = SampleSpec(self.camera_keys, deltas, self.tasks, return_uint8, image_transforms)
        self.image_transforms = image_transforms
        self.episodes = list(episodes) if episodes is not None else None
        self._keep: frozenset[int] | None = None
        self.num_frames, self.num_episodes = self.manifest.total_frames, self.manifest.total_episodes
        episodes = check_episodes(episodes, self.manifest.shards)
        if episodes is not None:
            self._keep, self.num_frames = episode_selection(self.manifest.shards, episodes)
            self.num_episodes = len(self._keep)
        self.meta_cache_dir = meta_cache_dir
        self._meta: Any = None
        self.shuffle, self.seed, self.uneven, self.on_error = shuffle, seed, uneven, on_error
        self.episode_buffer, self.active_episodes = episode_buffer, active_episodes
        self.batch_size = batch_size
        self.mix_batch = batch_size or mix_batch or DEFAULT_BATCH  # the batch every mixing rule is about
        # every reader's options, built once from this frozen configuration; an iteration sets epoch and slot
        self._options = ReaderOptions(
            root=self.source,
            shards={s.path: s for s in self.manifest.shards},
            spec=self.sample_spec,
            camera_deltas={cam: tuple(deltas.get(cam, (0,))) for cam in self.camera_keys},
            shuffle=shuffle,
            seed=seed,
            epoch=0,
            slot=0,
            episode_buffer=episode_buffer,
            active_episodes=active_episodes,
            batch_size=batch_size,
            mix_batch=self.mix_batch,
            decode=self.decode_config,
            stream=self.stream_config,
            fps=self.fps,
        )
        self._rank_world = (rank, world_size) if rank is not None and world_size is not None else None
        if self._rank_world is None and detect_rank_world()[1] > 1:
            self._rank_world = detect_rank_world()  # captured now: spawned workers cannot see the process group
        self._epoch = SharedEpoch(0)
        self._board = ReaderBoard()  # skips and read retries, written by every reader, read by stats()
        self._planner = EpochPlanner(
            tuple(self.manifest.shards),
            seed,
            shuffle,
            uneven,
            self._keep,
            self.ranks_per_node if self.stream_config.cache is not None else None,  # node-stable with a cache
        )
        self._progress = EpochProgress(self._planner, seed)  # resume states and the delivery journal
        self._last_publisher: DecodePublisher | None = None

    @property
    def meta(self) -> Any:
        """lerobot's metadata of this root: ``LeRobotDatasetMetadata`` with lerobot installed, else
        :class:`~lerobot_wds.reader.meta.DatasetMeta` (see :mod:`meta`; a remote root's ``meta/`` is fetched
        once into a local cache)."""
        if self._meta is None:
            cache = Path(self.meta_cache_dir) if self.meta_cache_dir else None
            local = local_meta_root(self.source, self.manifest, self.stream_config, cache)
            self._meta = load_meta(local, repo_id=self.repo_id)
        return self._meta

    @property
    def repo_id(self) -> str:
        """The source's hub repo id (``hf://datasets/ORG/NAME``), else ``lerobot_wds/<root name>``."""
        url = str(self.manifest.source.get("url") or "")
        if url.startswith("hf://datasets/") and url.count("/") >= 4:
            return "/".join(url.split("/")[3:5]).split("@")[0]
        return f"lerobot_wds/{self.source.rstrip('/').rsplit('/', 1)[-1]}"

    # --- epochs and topology -------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch that seeds the next iteration's shuffles (seen by persistent workers too)."""
        self._epoch.set(check_int("set_epoch(epoch)", epoch, 0))

    @property
    def epoch(self) -> int:
        return self._epoch.get()

    def topology(self) -> Topology:
        """Returns this process's topology (rank/world captured or detected, worker from the DataLoader)."""
        return detect_topology(self._rank_world)

    def plan(self, topology: Topology, epoch: int | None = None) -> SlotPlan:
        """Returns what ``topology`` reads in ``epoch`` (default: the current epoch), from its start."""
        epoch = self.epoch if epoch is None else epoch
        plan = self._planner.plan(epoch, topology.world_size, topology.num_workers, None)
        return plan[topology.rank][topology.worker]

    def _cache_stream(self, topo: Topology, epoch: int, base: bytes | None, cache: CacheConfig) -> StreamConfig:
        """The stream configuration whose cache keeps this node's share: every episode its ranks read."""
        plan = self._planner.plan(epoch, topo.world_size, topo.num_workers, base)
        first = topo.rank // self.ranks_per_node * self.ranks_per_node
        ranks = plan[first : first + self.ranks_per_node]
        share = {seg.ref.episode for rank in ranks for p in rank for seg in p.segments}
        keep = frozenset(x.sha256 for s in self.manifest.shards for x in s.extents if x.episode in share)
        return replace(self.stream_config, cache=replace(cache, keep=keep))

    def samples_per_rank(self, num_workers: int = 0, world_size: int | None = None) -> int:
        """How many samples each rank yields per epoch with a DataLoader of ``num_workers`` workers."""
        num_workers = check_int("samples_per_rank(num_workers)", num_workers, 0)
        world_size = check_optional_int("samples_per_rank(world_size)", world_size, 1)
        world = world_size if world_size is not None else self.topology().world_size
        topo = Topology(rank=0, world_size=world, worker=0, num_workers=max(1, num_workers))
        return self.plan(topo).quota * topo.num_workers

    # --- iteration ---------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        topo = self.topology()
        epoch = self.epoch
        in_worker = torch.utils.data.get_worker_info() is not None
        board_row = self._board.row(topo.worker)
        start = self._progress.start(epoch, topo, in_worker)
        topo, plan, skip = start.topology, start.plan, start.skip
        if board_row is not None:
            board_row.reset(epoch, topo.num_workers)
            board_row.set({"mixing.target": self._mix_target(plan)})
        if self.batch_size is None and topo.worker == 0:
            hint_batching()
        if topo.slot == 0 and topo.slots > len(self.manifest.shards):
            hint_ranged(topo.slots, len(self.manifest.shards))
        if topo.slot == 0 and self.shuffle:
            warn_share_bounds_mix(self._plan_episodes(plan), topo.slots, self.mix_batch)
        errors = ErrorCounter(self.on_error, on_skip=board_row.record if board_row is not None else None)
        frames = FramePool(self.decode_config)
        reads = ReadCounters(on_change=board_row.record_reads if board_row is not None else None)
        if in_worker and self.assemble_config.tune_worker_malloc:
            tune_worker_malloc()
        slots = self.assemble_config.batch_slots
        ring = (
            SlotRing(slots, mapped_batch_bytes=self.assemble_config.mapped_batch_bytes)
            if slots and self.batch_size and in_worker
            else None
        )
        if skip >= plan.quota:
            return
        opts = replace(self._options, epoch=epoch, slot=topo.slot)
        if self.stream_config.cache is not None:
            opts = replace(opts, stream=self._cache_stream(topo, epoch, start.base, self.stream_config.cache))

        def progress(n: int) -> None:
            self._progress.progress(topo.worker, n)

        memory = reader_memory(opts, frames)
        publisher = DecodePublisher(board_row, memory, ring)  # decode counters reach the main process's stats()
        self._last_publisher = publisher
        try:
            for item in reader_stream(
                plan,
                opts,
                memory=memory,
                errors=errors,
                ring=ring,
                skip=skip,
                where=f"{self.source} rank {topo.rank} worker {topo.worker} epoch {epoch}",
                progress=progress,
                on_deliver=start.on_deliver,
                reads=reads,
                on_mix=board_row.record_mixing if board_row is not None else None,
            ):
                publisher.maybe()
                yield item
        finally:
            publisher.now()  # final counts before the worker reports its end: exact once the epoch is done
            if ring is not None:
                ring.release()  # between epochs and after the last, a worker holds no batch memory

    def _mix_target(self, plan: SlotPlan) -> int:
        """Distinct episodes every batch of this reader holds: 80% of i.i.d. over its episodes (:mod:`mixing`)."""
        return mix_target([seg.frames for seg in plan.segments], self.mix_batch)

    @staticmethod
    def _plan_episodes(plan: SlotPlan) -> int:
        """Distinct episodes a reader's plan reads."""
        return len({seg.ref.episode for seg in plan.segments})

    # --- resume ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Progress of this process's iteration (``num_workers=0``, or inside a worker as torchdata's
        StatefulDataLoader asks): epoch, samples consumed and visits delivered per reader (see :mod:`resume`)."""
        return self._progress.state(self.epoch, self.topology())

    def loader_state_dict(self, batches_seen: int, batch_size: int, num_workers: int) -> dict[str, Any]:
        """This rank's state after a plain DataLoader handed out ``batches_seen`` batches of this epoch.

        ``batches_seen`` counts from the start of the epoch, or, after an elastic resume
        (:meth:`resumes_elastically`), from the start of the resumed run's part of it.
        """
        topo = self.topology()
        topo = Topology(topo.rank, topo.world_size, 0, max(1, num_workers))
        return self._progress.loader_state(self.epoch, topo, batches_seen, batch_size)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Makes the next iteration of ``state["epoch"]`` continue after what was consumed.

        Load the state of this rank (and, from a StatefulDataLoader, of each worker): on the same ranks x
        workers the epoch goes on exactly as the uninterrupted run. To continue on another topology, load every
        rank's state of the checkpoint (one call each): the samples not delivered yet are re-planned over the
        new readers, each exactly once.
        """
        self.set_epoch(self._progress.load(state))

    def resumes_elastically(self, num_workers: int) -> bool:
        """Whether the loaded state continues this epoch re-planned on this topology (another ranks x
        workers than it was saved with); a training loop then counts its batches of the epoch from 0."""
        topo = self.topology()
        return self._progress.elastic(self.epoch, Topology(topo.rank, topo.world_size, 0, max(1, num_workers)))

    # --- diagnostics -------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Every reader counter of this dataset's last iteration, summed over its DataLoader workers.

        (Or this process's own reader without workers; see :mod:`board`.) ``frames`` and ``decoders``: the frame
        pool's and the decoder LRU's hits, misses, evictions, size, cost, capacity, peak cost and hit rate;
        ``decoded_frames``, ``delivered_frames``, ``decode_calls``, ``decode_passes`` (passes a long-GOP
        decoder started over, from a keyframe); ``batch_slots`` (created, reused; only when
        slots were made); what ``on_error="skip"`` skipped (``skipped_shards``, ``skipped_episodes``,
        ``skip_messages``: each reader's last reason); read attempts retried / timed out (``read_retries``,
        ``read_timeouts``); ``mixing``, the batch mixing delivered: ``distinct_per_batch`` over all batches,
        its minimum ``min_distinct_per_batch`` and ``per_worker`` (distinct episodes per batch of ``batch``
        samples: the dataset's batches, or runs of ``mix_batch`` samples of one worker when it yields samples, what
        ``DataLoader(ds, batch_size=mix_batch)`` collates), against ``target`` (the least any reader promises);
        ``memory``: the largest ``planned_peak`` of a reader (frames, videos and decoders it planned at once, under
        ``DecodeConfig.memory_limit_bytes``) and the largest ``rss_peak`` of a reader's process (bytes).
        Read after the epoch they are exact; mid-epoch, workers' decode counters are at
        most ``board.PUBLISH_EVERY_S`` old. Empty before any iteration.
        """
        if self._last_publisher is not None:
            self._last_publisher.now()  # this process's own reader: current to the last item
        totals = self._board.totals()
        if totals is None:
            return {}
        out = nested(totals.counts)
        if not out["batch_slots"]["created"]:
            del out["batch_slots"]  # no reader built batches in slots (per-sample, no workers, or turned off)
        out["skip_messages"] = list(totals.messages)
        out["mixing"] = self._mixing(totals.mixing)
        return out

    def _mixing(self, rows: tuple[tuple[int, int, int, int, int], ...]) -> dict[str, Any]:
        batch = self.mix_batch
        batches = sum(r[1] for r in rows)
        return {
            "batch": batch,
            "batches": batches,
            "distinct_per_batch": sum(r[2] for r in rows) / batches if batches else 0.0,
            "min_distinct_per_batch": min((r[3] for r in rows if r[1]), default=0),
            "per_worker": {r[0]: r[2] / r[1] for r in rows if r[1]},
            "target": min((r[4] for r in rows), default=0),
        }

    def __getstate__(self) -> dict[str, Any]:
        # Iteration state (decoders, caches) never travels to workers or into pickles.
        state = dict(self.__dict__)
        state["_last_publisher"] = None
        state["_meta"] = None  # re-read on demand; lerobot's metadata holds file handles and frames
        return state

    def __repr__(self) -> str:
        m, source = self.manifest, redact_url(self.source)
        return (
            f"LeRobotWdsDataset(source={source!r}, shards={len(m.shards)}, episodes={m.total_episodes}, "
            f"frames={m.total_frames}, cameras={list(self.camera_keys)}, shuffle={self.shuffle})"
        )
