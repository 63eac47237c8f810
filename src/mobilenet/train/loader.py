"""Transforms, samplers and loaders whose output depends only on (seed, epoch,
position): the order comes from a seeded permutation per epoch, each sample's
augmentation from its own seeded generator. So a run resumed mid-epoch, or split
across processes, sees exactly the batches an uninterrupted single run sees.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from torchvision.transforms import v2 as T

from ..images import Preprocess
from .config import TrainConfig

KEEP_BYTES = 2 << 30  # validation images kept resized (8-bit) up to this size in all


def train_transform(cfg: TrainConfig, pre: Preprocess, hflip: bool) -> T.Compose:
    steps: list = [T.PILToTensor(), T.RandomResizedCrop(pre.resolution, scale=cfg.crop_scale, antialias=True)]
    if hflip and cfg.hflip > 0:
        steps.append(T.RandomHorizontalFlip(cfg.hflip))
    if cfg.auto_augment:
        steps.append(T.AutoAugment(T.AutoAugmentPolicy(cfg.auto_augment)))
    steps += [T.ToDtype(torch.float32, scale=True), T.Normalize(pre.mean, pre.std)]
    if cfg.random_erase > 0:
        steps.append(T.RandomErasing(cfg.random_erase))
    return T.Compose(steps)


class Augmented(Dataset):
    """``transform(base[i])`` under a generator seeded by (seed, epoch, i)."""

    def __init__(self, base: Dataset, transform, seed: int = 0) -> None:
        self.base, self.transform, self.seed, self.epoch = base, transform, seed, 0

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        img, label = self.base[index]
        if img is None:
            return None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + self.epoch) * 1_000_033 + index) % (2**63))
            return self.transform(img), label


class ResumableSampler(DistributedSampler):
    """DistributedSampler that can start part-way through an epoch."""

    def __init__(self, dataset: Dataset, *, world: int, rank: int, seed: int) -> None:
        super().__init__(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self) -> int:
        return self.num_samples - self.start


class ShardSampler(Sampler):
    """Every ``world``-th index from ``rank``: an exact, unpadded split for evaluation."""

    def __init__(self, n: int, world: int, rank: int) -> None:
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def collate(batch: list):
    """Default collation without the samples that could not be read."""
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    images = torch.stack([b[0] for b in batch])
    labels = torch.tensor([b[1] for b in batch], dtype=torch.long)
    return images, labels


def loader(dataset: Dataset, *, batch_size: int, sampler: Sampler, workers: int, drop_last: bool = False,
           collate_fn=collate) -> DataLoader:
    # Its own generator: making an iterator must not draw from the global RNG, which
    # belongs to the model (dropout), or a resumed run would drift from an uninterrupted one.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate_fn,
                      drop_last=drop_last, persistent_workers=workers > 0, pin_memory=torch.cuda.is_available(),
                      generator=torch.Generator())


class EvalDataset(Dataset):
    """``pre.transform()`` of each sample, as `mobilenet eval` applies it. The samples in
    ``keep`` (validation's, seen every epoch) are read and resized once, here, and kept as the
    8-bit output of ``pre.resize_transform()`` while that fits in KEEP_BYTES: later passes
    only normalise them, and give what `mobilenet eval` gives."""

    def __init__(self, base: Dataset, pre: Preprocess, keep: Sequence[int] = ()) -> None:
        self.base, self.resize, self.normalize = base, pre.resize_transform(), pre.normalize_transform()
        self.kept: dict[int, tuple[torch.Tensor, int] | None] = {}
        if len(keep) * 3 * pre.resolution**2 <= KEEP_BYTES:
            with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                self.kept = dict(zip(keep, pool.map(self._resized, keep)))

    def _resized(self, index: int) -> tuple[torch.Tensor, int] | None:
        img, label = self.base[index]
        return None if img is None else (self.resize(img), label)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        item = self.kept[index] if index in self.kept else self._resized(index)
        return None if item is None else (self.normalize(item[0]), item[1])
