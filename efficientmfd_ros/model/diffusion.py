"""Box diffusion of the CFDP head: cosine schedule, q(z_t|z_0) (Eq. 5), training boxes, DDIM.

Boxes live in three spaces: `xyxy` pixels of the network input; normalized `cxcywh` in [0,1]; and
the diffusion signal `z = (cxcywh * 2 - 1) * signal_scale`. Noise boxes `(B,N,4)` are standard
normal samples z_T of that signal space.
"""
import math
import typing

import torch
from torch import nn

# (noise boxes (B,N,4) xyxy pixels, t (B,)) -> (logits (B,N,C), boxes (B,N,4) xyxy pixels)
HeadFn = typing.Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def cosine_beta_schedule(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Betas `(T,)` float64 of the cosine schedule (Nichol & Dhariwal 2021), clipped to 0.999."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    betas = 1 - (alphas_cumprod[1:] / alphas_cumprod[:-1])
    return betas.clamp(0, 0.999)


def cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) * 0.5, (y1 + y2) * 0.5, x2 - x1, y2 - y1], dim=-1)


def pixel_scale(like: torch.Tensor, image_hw: typing.Sequence[int]) -> torch.Tensor:
    """`(W, H, W, H)` as a `(4,)` tensor of `like`'s dtype on `like`'s device.

    Built from `new_full` fills on that device rather than `new_tensor([w, h, w, h])`: a tensor of
    host values is a host->device copy, which blocks the host and, inside a CUDA-graph capture,
    would be recorded from a temporary host buffer. A fresh tensor per call (three tiny kernels, or
    graph nodes) was chosen over a cache keyed by (h, w, device, dtype) so no tensor made under
    inference mode is ever reused by a training step, and nothing goes stale when the model moves.
    """
    h, w = image_hw
    width, height = like.new_full((), float(w)), like.new_full((), float(h))
    return torch.stack([width, height, width, height])


class BoxDiffusion(nn.Module):
    """Schedule buffers (not saved in state dicts) and the forward/reverse box processes.

    `time_pairs` lists the DDIM `(t, t_next)` pairs, from T-1 down to `t_next = -1`; with one
    sampling step it is `[(T-1, -1)]`: a single head evaluation on pure noise boxes.
    """

    sqrt_alphas_cumprod: torch.Tensor  # buffers, (timesteps,) float32
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    sqrt_recip_alphas_cumprod: torch.Tensor
    sqrt_recipm1_alphas_cumprod: torch.Tensor

    def __init__(self, timesteps: int = 1000, sampling_steps: int = 1, signal_scale: float = 2.0,
                 box_renewal: bool = False, renewal_threshold: float = 0.5):
        super().__init__()
        self.timesteps = timesteps
        self.signal_scale = signal_scale
        self.box_renewal = box_renewal
        self.renewal_threshold = renewal_threshold
        alphas_cumprod = torch.cumprod(1.0 - cosine_beta_schedule(timesteps), dim=0)
        for name, value in (('sqrt_alphas_cumprod', alphas_cumprod.sqrt()),
                            ('sqrt_one_minus_alphas_cumprod', (1 - alphas_cumprod).sqrt()),
                            ('sqrt_recip_alphas_cumprod', (1 / alphas_cumprod).sqrt()),
                            ('sqrt_recipm1_alphas_cumprod', (1 / alphas_cumprod - 1).sqrt())):
            self.register_buffer(name, value.float(), persistent=False)
        self._alphas_cumprod = alphas_cumprod.tolist()
        times = torch.linspace(-1, timesteps - 1, sampling_steps + 1).round().long().tolist()[::-1]
        self.time_pairs = list(zip(times[:-1], times[1:]))

    def signal_to_boxes(self, z: torch.Tensor, image_hw: typing.Sequence[int]) -> torch.Tensor:
        """Signal `(...,4)` -> `xyxy` pixels of an `image_hw = (H, W)` image."""
        scale = self.signal_scale
        cxcywh = (z.clamp(-scale, scale) / scale + 1) * 0.5
        return cxcywh_to_xyxy(cxcywh) * pixel_scale(z, image_hw)

    def boxes_to_signal(self, boxes: torch.Tensor, image_hw: typing.Sequence[int]) -> torch.Tensor:
        """`xyxy` pixels `(...,4)` -> clamped signal `(...,4)`."""
        cxcywh = xyxy_to_cxcywh(boxes / pixel_scale(boxes, image_hw))
        scale = self.signal_scale
        return ((cxcywh * 2 - 1) * scale).clamp(-scale, scale)

    def q_sample(self, z0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """z_t = sqrt(abar_t) z_0 + sqrt(1 - abar_t) eps (Eq. 5).

        `t` int64 indexes the leading dims of `z0` and broadcasts over the rest.
        """
        a = self.sqrt_alphas_cumprod[t].reshape(*t.shape, *([1] * (z0.dim() - t.dim())))
        b = self.sqrt_one_minus_alphas_cumprod[t].reshape(a.shape)
        return a * z0 + b * noise

    def prepare_train_boxes(self, gt_boxes: torch.Tensor, image_hw: typing.Sequence[int],
                            num_proposals: int, generator: torch.Generator | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noised proposal boxes for one training image.

        `gt_boxes (K,4)` float `xyxy` pixels of an `image_hw = (H, W)` input. The ground truth is
        padded to `num_proposals` with random boxes around the centre (or randomly subsampled when
        K > N; a whole-image box stands in when K = 0), mapped to the signal space, noised to a
        uniformly drawn step t and mapped back. Returns `(boxes (N,4) xyxy pixels, t () int64)`.
        Random draws use `generator` (a CPU generator; None means torch's global one).
        """
        device = gt_boxes.device
        h, w = image_hw
        gt = xyxy_to_cxcywh(gt_boxes.detach().float().cpu() / torch.tensor([w, h, w, h]))
        if gt.shape[0] == 0:
            gt = torch.tensor([[0.5, 0.5, 1.0, 1.0]])
        t = torch.randint(0, self.timesteps, (1,), generator=generator)
        noise = torch.randn(num_proposals, 4, generator=generator)
        count = gt.shape[0]
        if count < num_proposals:
            filler = torch.randn(num_proposals - count, 4, generator=generator) / 6.0 + 0.5
            filler[:, 2:] = filler[:, 2:].clamp(min=1e-4)
            start = torch.cat([gt, filler])
        else:
            start = gt[torch.randperm(count, generator=generator)[:num_proposals]]
        start = (start * 2 - 1) * self.signal_scale
        alpha = self._alphas_cumprod[int(t)]
        z_t = math.sqrt(alpha) * start + math.sqrt(1 - alpha) * noise
        return self.signal_to_boxes(z_t, image_hw).to(device), t[0].to(device)

    def ddim_step(self, z_t: torch.Tensor, z0: torch.Tensor, t: int, t_next: int) -> torch.Tensor:
        """Deterministic DDIM update (eta = 0) from step t to t_next >= 0, given predicted z_0."""
        alpha, alpha_next = self._alphas_cumprod[t], self._alphas_cumprod[t_next]
        eps = (z_t / math.sqrt(alpha) - z0) / math.sqrt(1 / alpha - 1)
        return z0 * math.sqrt(alpha_next) + eps * math.sqrt(1 - alpha_next)

    def sample(self, run_head: HeadFn, noise: torch.Tensor,
               image_hw: typing.Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """DDIM sampling over `time_pairs`; returns the last head evaluation's `(logits, boxes)`.

        `run_head(boxes (B,N,4) xyxy pixels, t (B,) int64) -> (logits (B,N,C), boxes (B,N,4))`;
        `noise (B,N,4)` is z_T. With box renewal, boxes whose best class score is under the
        threshold restart from their initial noise at the next step, keeping every shape static.
        """
        z = noise
        logits = boxes = None
        for t, t_next in self.time_pairs:
            steps = torch.full(noise.shape[:1], t, dtype=torch.int64, device=noise.device)
            logits, boxes = run_head(self.signal_to_boxes(z, image_hw), steps)
            if t_next < 0:
                break
            z = self.ddim_step(z, self.boxes_to_signal(boxes, image_hw), t, t_next)
            if self.box_renewal:
                keep = logits.sigmoid().amax(dim=-1, keepdim=True) > self.renewal_threshold
                z = torch.where(keep, z, noise)
        assert logits is not None and boxes is not None  # time_pairs is never empty
        return logits, boxes
