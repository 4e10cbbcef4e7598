"""EfficientMFD: shared backbone + FPN, ORPPT fusion and the CFDP diffusion detection head."""
import typing

import torch
from torch import nn

from efficientmfd_ros.model.backbones import build_backbone
from efficientmfd_ros.model.color import fused_to_rgb, rgb_to_luma
from efficientmfd_ros.model.config import ModelConfig
from efficientmfd_ros.model.diffusion import BoxDiffusion
from efficientmfd_ros.model.fpn import FPN
from efficientmfd_ros.model.fusion import ORPPTFusion
from efficientmfd_ros.model.head import CFDPHead
from efficientmfd_ros.model.head_layers import static_graph
from efficientmfd_ros.model.optimize import fold_batchnorm


class EfficientMFD(nn.Module):
    """The jointly trained fusion + detection network.

    Inputs everywhere: `rgb (B,3,H,W)` float32 in [0,1] (RGB order) and `thermal (B,1,H,W)` float32
    in [0,1], H and W multiples of 32; ImageNet normalization happens inside. Boxes are `xyxy`
    pixels of this network input. Detection reads the modality-summed FPN features, not the fused
    image, so `forward(..., run_fusion=False)` skips the fusion decoder entirely.
    """

    pixel_mean: torch.Tensor  # buffers, (1,3,1,1) float32
    pixel_std: torch.Tensor

    def __init__(self, cfg: ModelConfig, load_backbone_weights: bool = True):
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, load_backbone_weights)
        self.fpn = FPN(cfg.fpn, self.backbone.out_channels)
        levels = list(cfg.fpn.levels)
        self.fusion_level_index = [levels.index(lv) for lv in cfg.fusion.rfrm_levels]
        self.fusion = ORPPTFusion(cfg.fusion, cfg.fpn.channels)
        self.head = CFDPHead(cfg.head, [int(lv[1:]) for lv in levels])
        h = cfg.head
        self.diffusion = BoxDiffusion(h.timesteps, h.sampling_steps, h.signal_scale, h.box_renewal,
                                      h.renewal_threshold)
        self.register_buffer('pixel_mean', torch.tensor(cfg.pixel_mean).reshape(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('pixel_std', torch.tensor(cfg.pixel_std).reshape(1, 3, 1, 1),
                             persistent=False)
        # Inference layout switches, set by optimize_for_inference: one backbone batch holding
        # both modalities (best on GPUs) or two passes (less memory traffic on CPUs).
        self.batch_modalities = True
        self.channels_last = False

    @property
    def num_proposals(self) -> int:
        return self.cfg.head.num_proposals

    @staticmethod
    def check_inputs(rgb: torch.Tensor, thermal: torch.Tensor) -> None:
        """Raise ValueError unless `rgb (B,3,H,W)` and `thermal (B,1,H,W)` float, H, W % 32 == 0.

        Skipped while tracing or exporting, where shapes are fixed by the example inputs.
        """
        if static_graph():
            return
        for name, x, channels in (('rgb', rgb, 3), ('thermal', thermal, 1)):
            if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != channels:
                shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
                raise ValueError(f'{name} must be a (B,{channels},H,W) tensor, got {shape}')
            if not x.is_floating_point():
                raise ValueError(f'{name} must be a float tensor in [0,1], got {x.dtype}')
        if rgb.shape[0] != thermal.shape[0] or rgb.shape[-2:] != thermal.shape[-2:]:
            raise ValueError(f'rgb {tuple(rgb.shape)} and thermal {tuple(thermal.shape)} must '
                             'share batch size and H, W')
        h, w = rgb.shape[-2:]
        if h == 0 or w == 0 or h % 32 or w % 32:
            raise ValueError(f'input H, W must be positive multiples of 32, got {h}x{w}')

    def extract(self, rgb: torch.Tensor, thermal: torch.Tensor) -> list[torch.Tensor]:
        """FPN levels `[(B, fpn.channels, H/2**k, W/2**k) for pk in fpn.levels]`.

        One batched backbone pass over [rgb; thermal replicated to 3 channels] (two passes when
        `batch_modalities` is off); the per-level features of the two modalities are added and go
        through the FPN once. The FPN is linear, so this equals adding the two modalities' FPN
        outputs up to an input-independent bias map, at half the FPN cost.
        """
        self.check_inputs(rgb, thermal)
        thermal = thermal.expand(-1, 3, -1, -1)
        if self.batch_modalities:
            batch = rgb.shape[0]
            feats = self._backbone(torch.cat([rgb, thermal], dim=0))
            summed = [f[:batch] + f[batch:] for f in feats]
        else:
            summed = [a + b for a, b in zip(self._backbone(rgb), self._backbone(thermal))]
        return self.fpn(summed)

    def _backbone(self, images: torch.Tensor) -> list[torch.Tensor]:
        images = (images - self.pixel_mean) / self.pixel_std
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.backbone(images)

    def optimize_for_inference(self, batch_modalities: bool = False,
                               channels_last: bool = True) -> 'EfficientMFD':
        """Rewrite in place for fast inference: eval mode, backbone BatchNorm folded into its
        convs, channels-last layout. Defaults suit CPUs; on CUDA pass `batch_modalities=True`.

        The result computes the same outputs (to float rounding) but must not be trained or saved:
        its state dict no longer matches the configuration.
        """
        self.eval()
        device = self.pixel_mean.device
        fold_batchnorm(self.backbone, torch.zeros(1, 3, 64, 64, device=device))
        if channels_last:
            self.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        self.batch_modalities = batch_modalities
        return self

    def fuse(self, rgb: torch.Tensor, thermal: torch.Tensor,
             feats: list[torch.Tensor]) -> torch.Tensor:
        """Fused luminance `(B,1,H,W)` in [0,1] from the inputs and `extract`'s FPN levels."""
        levels = [feats[i] for i in self.fusion_level_index]
        return self.fusion(rgb_to_luma(rgb), thermal, levels)

    def make_noise_boxes(self, batch: int, generator: torch.Generator | None = None,
                         device: torch.device | str | None = None, seed: int | None = None,
                         num: int | None = None) -> torch.Tensor:
        """Initial noise boxes z_T `(batch, N, 4)` float32 (standard normal, signal space);
        N is `num`, default `head.num_proposals`.

        Without a generator, one draw from a generator seeded with `seed` (default
        `head.noise_seed`) is shared by every image, so an image's detections depend neither on
        the call nor on the batch. With a (CPU) generator, each image gets its own draw.
        """
        n = self.num_proposals if num is None else int(num)
        if generator is None:
            seed = self.cfg.head.noise_seed if seed is None else int(seed)
            generator = torch.Generator().manual_seed(seed)
            noise = torch.randn(1, n, 4, generator=generator).expand(batch, n, 4).contiguous()
        else:
            noise = torch.randn(batch, n, 4, generator=generator)
        return noise.to(device if device is not None else self.pixel_mean.device)

    def detect(self, feats: list[torch.Tensor], image_hw: typing.Sequence[int],
               noise_boxes: torch.Tensor) -> dict:
        """DDIM sampling of the head from `noise_boxes (B,N,4)` (see `make_noise_boxes`).

        `image_hw = (H, W)` of the network input. Returns `dict(pred_logits (B,N,C),
        pred_boxes (B,N,4) xyxy pixels)` of the last head stage at the last DDIM step.
        """
        if not static_graph() and (noise_boxes.dim() != 3 or noise_boxes.shape[2] != 4
                                    or noise_boxes.shape[0] != feats[0].shape[0]):
            raise ValueError(f'noise_boxes must be (B={feats[0].shape[0]},N,4), '
                             f'got {tuple(noise_boxes.shape)}')
        image_hw = (int(image_hw[0]), int(image_hw[1]))

        def run_head(boxes: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.head(feats, boxes, t)[-1]

        logits, boxes = self.diffusion.sample(run_head, noise_boxes.float(), image_hw)
        return {'pred_logits': logits, 'pred_boxes': boxes}

    def forward_train(self, rgb: torch.Tensor, thermal: torch.Tensor, targets: list[dict],
                      generator: torch.Generator | None = None) -> dict:
        """One training forward pass.

        `targets`: B dicts with `boxes (K,4)` float32 xyxy pixels of the network input (and
        `labels (K,)`, read by the loss only). Each image's ground truth is padded and noised
        (`BoxDiffusion.prepare_train_boxes`, random draws from `generator`). Returns
        `dict(fused (B,1,H,W), pred_logits (B,N,C), pred_boxes (B,N,4) xyxy pixels,
        aux_outputs [dict(pred_logits, pred_boxes) per earlier stage], noised_boxes (B,N,4) xyxy
        pixels, t (B,) int64)`.
        """
        if len(targets) != rgb.shape[0]:
            raise ValueError(f'{rgb.shape[0]} images but {len(targets)} targets')
        feats = self.extract(rgb, thermal)
        fused = self.fuse(rgb, thermal, feats)
        image_hw = tuple(rgb.shape[-2:])
        boxes, steps = [], []
        for index, target in enumerate(targets):
            gt = target['boxes']
            if gt.dim() != 2 or gt.shape[-1] != 4:
                raise ValueError(f'targets[{index}]["boxes"] must be (K,4), got {tuple(gt.shape)}')
            b, t = self.diffusion.prepare_train_boxes(gt.to(rgb.device), image_hw,
                                                      self.num_proposals, generator)
            boxes.append(b)
            steps.append(t)
        noised, t_all = torch.stack(boxes).float(), torch.stack(steps)
        outputs = self.head(feats, noised, t_all)
        aux = [{'pred_logits': lg, 'pred_boxes': bx} for lg, bx in outputs[:-1]]
        return {'fused': fused, 'pred_logits': outputs[-1][0], 'pred_boxes': outputs[-1][1],
                'aux_outputs': aux, 'noised_boxes': noised, 't': t_all}

    def forward(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor,
                run_fusion: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Inference/export entry: `(pred_logits (B,N,C), pred_boxes (B,N,4) xyxy pixels,
        fused_rgb (B,3,H,W) in [0,1] or None)`; no data-dependent control flow."""
        feats = self.extract(rgb, thermal)
        detections = self.detect(feats, rgb.shape[-2:], noise_boxes)
        fused_rgb = fused_to_rgb(self.fuse(rgb, thermal, feats), rgb) if run_fusion else None
        return detections['pred_logits'], detections['pred_boxes'], fused_rgb
