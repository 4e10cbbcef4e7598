"""Building blocks of the CFDP head: multi-level RoIAlign, proposal self-attention, dynamic
instance interaction and the diffusion time embedding. All are static-shape and ONNX-exportable.

`static_graph()` and `avoid_host_sync(device)` tell model code when it must not synchronize with
the host or make shapes from data: while tracing, exporting or compiling, and also while a CUDA
graph is being captured, while torch's CUDA sync debug mode is set, or inside `sync_free_paths()`.
"""
import contextlib
import contextvars
import math
import typing

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.ops import roi_align


class MultiLevelRoIAlign(nn.Module):
    """RoIAlign of each box on the pyramid level its size selects.

    Level k = floor(4 + log2(sqrt(area) / canonical_size)) clamped to the available levels (the FPN
    paper's rule, canonical size 224), computed in float32 whatever the box dtype. Traced,
    exported, compiled or CUDA-graph-captured runs (`avoid_host_sync`) pool every box on every
    level and select with a one-hot level mask, so they hold no data-dependent shapes and no host
    sync; other eager runs pool each box on its own level only: the same numbers for a fraction of
    the work.
    `forward(levels [(B,C,h_k,w_k)], boxes (B,N,4) xyxy pixels) -> (B*N, C, S, S)`, rows ordered
    image-major (row b*N + n is box n of image b).
    """

    def __init__(self, level_ids: list[int], output_size: int, sampling_ratio: int,
                 canonical_size: int = 224):
        super().__init__()
        self.canonical_size = float(canonical_size)
        self.level_ids = list(level_ids)
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio

    def assign_levels(self, boxes: torch.Tensor) -> torch.Tensor:
        """Pyramid level `(M,)` float32 for `boxes (M,4)` xyxy pixels of any float dtype."""
        # float16 w*h overflows past 65504 (sides over ~256 px) and would pick the wrong level.
        boxes = boxes.float()
        area = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
        level = torch.floor(4 + torch.log2(area.sqrt() / self.canonical_size + 1e-8))
        return level.clamp(self.level_ids[0], self.level_ids[-1])

    def forward(self, levels: list[torch.Tensor], boxes: torch.Tensor) -> torch.Tensor:
        batch, num = boxes.shape[:2]
        flat = boxes.reshape(-1, 4)
        index = torch.arange(batch, device=boxes.device, dtype=boxes.dtype)
        index = index[:, None].expand(batch, num).reshape(-1, 1)
        rois = torch.cat([index, flat], dim=1)
        assigned = self.assign_levels(flat)
        if len(self.level_ids) == 1:
            return self._pool(levels[0], rois, self.level_ids[0])
        if not avoid_host_sync(boxes.device):
            return self._pool_selected(levels, rois, assigned)
        pooled = None
        for level_id, feat in zip(self.level_ids, levels):
            part = self._pool(feat, rois, level_id)
            part = part * (assigned == level_id).to(part.dtype)[:, None, None, None]
            pooled = part if pooled is None else pooled + part
        assert pooled is not None  # levels is never empty
        return pooled

    def _pool(self, feat: torch.Tensor, rois: torch.Tensor, level_id: int) -> torch.Tensor:
        # Under autocast roi_align runs in float32 by itself; keep the box coordinates precise.
        if not torch.is_autocast_enabled(feat.device.type):
            rois = rois.to(feat.dtype)
        return roi_align(feat, rois, self.output_size, 1.0 / 2 ** level_id, self.sampling_ratio,
                         aligned=True)

    def _pool_selected(self, levels: list[torch.Tensor], rois: torch.Tensor,
                       assigned: torch.Tensor) -> torch.Tensor:
        """Eager path: each box pooled on its own level only; equal to the masked sum."""
        size = self.output_size
        pooled = levels[0].new_zeros(rois.shape[0], levels[0].shape[1], size, size)
        for level_id, feat in zip(self.level_ids, levels):
            index = torch.nonzero(assigned == level_id).squeeze(1)
            if index.numel():
                pooled[index] = self._pool(feat, rois[index], level_id).to(pooled.dtype)
        return pooled


def static_graph() -> bool:
    """True while tracing, exporting or compiling: then no data-dependent shapes are allowed."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


_FORCE_SYNC_FREE = contextvars.ContextVar('efficientmfd_force_sync_free', default=False)


@contextlib.contextmanager
def sync_free_paths() -> typing.Iterator[None]:
    """Within this block `avoid_host_sync` is true on every device, so the code paths a CUDA-graph
    capture takes also run on the CPU (how the tests compare them with the eager paths)."""
    token = _FORCE_SYNC_FREE.set(True)
    try:
        yield
    finally:
        _FORCE_SYNC_FREE.reset(token)


def avoid_host_sync(device: torch.device) -> bool:
    """True when code working on `device` must neither wait for it nor make shapes from data.

    That is under `static_graph()`, inside `sync_free_paths()`, and on CUDA while the current
    stream is capturing a graph or while torch's sync debug mode is set: the torch backend's fast
    path probes a stage for host syncs under that mode before capturing it, so the probe must see
    the path the capture will take. Plain eager runs (CPU or CUDA) get False and the cheaper
    data-dependent paths.
    """
    if static_graph() or _FORCE_SYNC_FREE.get():
        return True
    if device.type != 'cuda':
        return False
    return torch.cuda.is_current_stream_capturing() or torch.cuda.get_sync_debug_mode() != 0


class ProposalAttention(nn.Module):
    """Multi-head self-attention among the N proposals of each image: `(B,N,d) -> (B,N,d)`."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class DynamicInteraction(nn.Module):
    """Dynamic instance interaction: each proposal's feature generates two 1x1 'conv' layers that
    are applied to its own RoI features.

    `forward(proposals (M,d), rois (M,S*S,d)) -> (M,d)`: rois @ P1 (d x k) -> LN, ReLU -> @ P2
    (k x d) -> LN, ReLU -> flatten -> Linear(S*S*d, d) -> LN, ReLU, with P1, P2 linear in the
    proposal feature.
    """

    def __init__(self, dim: int, dynamic_dim: int, pooler_resolution: int):
        super().__init__()
        self.dim = dim
        self.dynamic_dim = dynamic_dim
        self.generate = nn.Linear(dim, 2 * dim * dynamic_dim)
        self.norm1 = nn.LayerNorm(dynamic_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.out = nn.Linear(dim * pooler_resolution ** 2, dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, proposals: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        params = self.generate(proposals)
        split = self.dim * self.dynamic_dim
        first = params[:, :split].reshape(-1, self.dim, self.dynamic_dim)
        second = params[:, split:].reshape(-1, self.dynamic_dim, self.dim)
        x = F.relu(self.norm1(torch.bmm(rois, first)))
        x = F.relu(self.norm2(torch.bmm(x, second)))
        return F.relu(self.norm3(self.out(x.flatten(1))))


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the diffusion step then an MLP: `t (B,) -> (B, 4*dim)`."""

    freqs: torch.Tensor  # buffer, (dim // 2,) float32

    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
        self.register_buffer('freqs', freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, 4 * dim), nn.GELU(),
                                 nn.Linear(4 * dim, 4 * dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.to(self.freqs.dtype)[:, None] * self.freqs[None]
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=-1))
