"""Building blocks of the CFDP head: multi-level RoIAlign, proposal self-attention, dynamic
instance interaction and the diffusion time embedding. All are static-shape and ONNX-exportable.

`static_graph()` tells model code when it must not make shapes from data: while tracing, exporting
or compiling. The head itself has no data-dependent shapes or host syncs on any path, so it also
runs inside a CUDA-graph capture.
"""
import math

import torch
from torch import nn
import torch.nn.functional as F
from torchvision.ops import roi_align


class MultiLevelRoIAlign(nn.Module):
    """RoIAlign of each box on the pyramid level its size selects.

    Level k = floor(4 + log2(sqrt(area) / canonical_size)) clamped to the available levels (the FPN
    paper's rule, canonical size 224), computed in float32 whatever the box dtype. The levels are
    stacked once per image batch (`stack`) as the images of one batch, and every run (eager,
    traced, exported, CUDA-graph-captured) pools all boxes with one RoIAlign call on it: no
    data-dependent shapes, no host sync, each box pooled once. Pooling every box on every level
    and masking, as static graphs did before, made RoIAlign a quarter of the CPU graph's time;
    this takes a third of that.
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

    @staticmethod
    def stack(levels: list[torch.Tensor]) -> torch.Tensor:
        """`levels [(B,C,h_k,w_k)]`, finest first -> `(L*B, C, h_0, w_0)`, level-major.

        Each coarser level is padded to the finest one's size by one replicated row and column,
        then zeros. That equals torchvision's per-level RoIAlign except for samples between 1 and
        2 level pixels past a coarser level's bottom or right edge (zero there, a blend of the
        edge and zero here), which only boxes reaching out of the image have; the committed
        weights, trained with per-level pooling, score the same AP with this (models/README.md).
        """
        height, width = levels[0].shape[-2:]
        canvas = []
        for feat in levels:
            h, w = feat.shape[-2:]
            if (h, w) != (height, width):
                feat = F.pad(feat, (0, min(1, width - w), 0, min(1, height - h)), mode='replicate')
                feat = F.pad(feat, (0, width - feat.shape[-1], 0, height - feat.shape[-2]))
            canvas.append(feat)
        return torch.cat(canvas, dim=0) if len(canvas) > 1 else canvas[0]

    def forward(self, stacked: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """`stacked` from `stack`, `boxes (B,N,4)` xyxy pixels -> `(B*N, C, S, S)`, rows ordered
        image-major (row b*N + n is box n of image b)."""
        batch, num = boxes.shape[:2]
        flat = boxes.reshape(-1, 4)
        image = torch.arange(batch, device=boxes.device, dtype=boxes.dtype)
        image = image[:, None].expand(batch, num).reshape(-1)
        assigned = self.assign_levels(flat)
        position = (assigned - self.level_ids[0]).to(boxes.dtype)
        scale = torch.pow(2.0, -assigned).to(boxes.dtype)
        rois = torch.cat([(position * batch + image)[:, None], flat * scale[:, None]], dim=1)
        # Under autocast roi_align runs in float32 by itself; keep the box coordinates precise.
        if not torch.is_autocast_enabled(stacked.device.type):
            rois = rois.to(stacked.dtype)
        return roi_align(stacked, rois, self.output_size, 1.0, self.sampling_ratio, aligned=True)


def static_graph() -> bool:
    """True while tracing, exporting or compiling: then no data-dependent shapes are allowed."""
    return (torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export()
            or torch.compiler.is_compiling())


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
