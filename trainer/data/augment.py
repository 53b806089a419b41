"""Train-only image augmentation on the training device, a whole batch at a time: a random crop
of the zero-padded image (zero is the train mean after standardisation) and a horizontal flip.

The randomness of batch b of epoch e comes from a generator seeded with (seed, e, b), so a
resumed run augments every batch exactly as the uninterrupted run did.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Augment:
    def __init__(self, image_shape: tuple[int, ...], crop_padding: int = 0, flip: bool = False):
        self.shape = tuple(image_shape)
        self.padding, self.flip = int(crop_padding), bool(flip)

    def describe(self) -> str:
        parts = [f"random crop, padding {self.padding}"] if self.padding else []
        return ", ".join(parts + (["horizontal flip"] if self.flip else [])) + " (train only)"

    def __call__(self, x: torch.Tensor, seed: int, epoch: int, batch: int) -> torch.Tensor:
        n = len(x)
        generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + batch)
        images = x.reshape(n, *self.shape)
        c, h, w = self.shape
        if self.padding:
            p = self.padding
            padded = F.pad(images, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device)[None]).view(n, 1, h, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device)[None]).view(n, 1, 1, w)
            batch_idx = torch.arange(n, device=x.device).view(n, 1, 1, 1)
            chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
            images = padded[batch_idx, chan, rows, cols]
        if self.flip:
            flips = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
            images = torch.where(flips, images.flip(-1), images)
        return images.reshape(x.shape)
