"""Gradient Matrix Task-Alignment (GMTA, paper Eq. 11-12).

The gradients of the fusion loss `L_u` and the detection loss `L_d` over the shared parameters
(backbone + FPN, `P` numbers in all) form `G = [g_u, g_d]` `(P,2)`. GMTA replaces `G` by the
closest matrix with orthogonal, equal-norm columns (the Procrustes problem): with the thin SVD
`G = U S V^T`, `G_hat = sigma U V^T`, so `G_hat^T G_hat = sigma^2 I` and its condition number is
1: neither task dominates the shared update. The update written into `.grad` of every shared
parameter is `omega g_hat_u + (1 - omega) g_hat_d`.

`scale` picks sigma: `'min'` (s_min, the paper's and Aligned-MTL's choice) or `'rms'`
(`sqrt((s_1^2 + s_2^2) / 2)`, so `G_hat` keeps the Frobenius norm of `G`). Only the length of the
update differs. With `'min'`, when one task's gradient is ~1e5 times the other's (detection vs
fusion early in training), the shared update is ~1e5 times shorter than the summed gradient and
AdamW's epsilon, not the gradient, sets the step of the shared parameters; `'rms'` keeps the
alignment and the summed gradient's scale.

The thin SVD of the `(P,2)` matrix comes from its QR factorisation, `G = Q R` (two-column
Gram-Schmidt in float64), and the SVD of the `2x2` `R = U_r S V^T`: then `U = Q U_r`, so
`G_hat = G M` with `M = sigma V S^-1 V^T`, and the combined update is `a g_u + b g_d` with
`(a, b) = M (omega, 1 - omega)`; `U` is never formed. Working from `R` rather than from the Gram
matrix `G^T G` keeps `s_min` accurate for nearly parallel gradients, where the Gram matrix would
square the condition number.

Degenerate cases, where `U` is not defined:
* one task's gradient is zero (at most `zero_tol` = 1e-12 times the other, e.g. a batch without
  labelled images): the other task's gradient is written unchanged;
* both are non-zero but collinear (the sine of their angle is at most `collinear_tol` = 1e-6):
  the tasks agree and `omega g_u + (1 - omega) g_d` is written;
* a non-finite gradient (fp16 overflow): `g_u + g_d` is written, so a GradScaler sees the inf and
  skips the step.

Task-specific parameters get their own task's gradient: fusion-only ones from `L_u`,
detection-only ones from `L_d`. One `autograd.grad` call per task covers the shared and that
task's parameters together, so a GMTA step costs two backward passes and no `create_graph`.

DDP: under an initialised `torch.distributed`, all gradients (both tasks, shared and specific)
are averaged over ranks in one all-reduce before the SVD, so every rank writes the same update.
The caller must keep DDP's own gradient hooks out of the way: run the forward pass of a GMTA
step inside `ddp_model.no_sync()` (nothing else syncs, since `.backward()` is never called).
"""
from dataclasses import asdict, dataclass
import math

import torch
import torch.distributed as dist

TASKS = ('fusion', 'detection')
SCALES = ('min', 'rms')


@dataclass
class GMTAStats:
    """One application of GMTA; norms are of the (unscaled) per-task shared gradients."""

    kappa_before: float  # condition number s_max / s_min of G (inf when rank-deficient)
    kappa_after: float  # condition number of G_hat (1 when aligned)
    cosine: float  # cosine similarity of g_u and g_d
    norm_u: float  # ||g_u|| over the shared parameters
    norm_d: float  # ||g_d|| over the shared parameters
    fallback: str  # '' when aligned, else why not: 'zero_u', 'zero_d', 'collinear', ...

    def as_dict(self) -> dict:
        return asdict(self)


def _grads(loss, params, retain_graph):
    """Gradients of `loss` for `params` (zeros where unused or where `loss` has no graph)."""
    if not params:
        return []
    if loss.requires_grad:
        grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    else:
        grads = [None] * len(params)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _flat(tensors, like):
    return torch.cat([t.reshape(-1) for t in tensors]) if tensors else like.new_zeros(0)


def _scatter(flat, params):
    """Views of `flat` shaped like each of `params`."""
    out, offset = [], 0
    for p in params:
        out.append(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return out


def _kappa(singular):
    return math.inf if singular[-1] <= 0 else float(singular[0] / singular[-1])


def triangular_factor(g_u: torch.Tensor, g_d: torch.Tensor, chunk: int = 1 << 22):
    """`R (2,2)` float64, upper triangular, of the thin QR `[g_u, g_d] = Q R` (Gram-Schmidt in
    float64, `chunk` numbers at a time so no float64 copy of the gradients is made). A zero
    `g_u` gives `R = [[0, 0], [0, |g_d|]]`."""
    def dots(fn):
        total = torch.zeros((), dtype=torch.float64, device=g_u.device)
        for start in range(0, g_u.numel(), chunk):
            total += fn(g_u[start:start + chunk].double(), g_d[start:start + chunk].double())
        return total

    uu = dots(lambda a, b: a @ a)
    ud = dots(lambda a, b: a @ b)
    if uu == 0:
        dd = dots(lambda a, b: b @ b)
        return torch.stack([uu, uu, uu, dd.sqrt()]).view(2, 2)
    coef = ud / uu
    residual = dots(lambda a, b: (b - coef * a) @ (b - coef * a))
    r11 = uu.sqrt()
    return torch.stack([r11, ud / r11, torch.zeros_like(uu), residual.sqrt()]).view(2, 2)


def align_coefficients(r: torch.Tensor, omega: float, zero_tol=1e-12, collinear_tol=1e-6,
                       scale: str = 'min'):
    """`(a, b, stats)` such that `a g_u + b g_d` is the aligned update, from the R factor of
    `G = [g_u, g_d]` (see `triangular_factor`); `scale` ('min' or 'rms') sets sigma.

    `stats` is `(kappa_before, kappa_after, cosine, norm_u, norm_d, fallback)`. A task gradient
    counts as zero when its norm is at most `zero_tol` times the other's; the two count as
    collinear when the sine of their angle is at most `collinear_tol`.
    """
    norm_u = float(r[0, 0])
    norm_d = float(torch.linalg.vector_norm(r[:, 1]))
    if not bool(torch.isfinite(r).all()):
        return 1.0, 1.0, (math.nan, math.nan, math.nan, norm_u, norm_d, 'nonfinite')
    if norm_u == 0 and norm_d == 0:
        return 0.0, 0.0, (math.inf, math.inf, 0.0, 0.0, 0.0, 'zero_both')
    cosine = float(r[0, 1]) / norm_d if norm_u > 0 and norm_d > 0 else 0.0
    singular = torch.linalg.svdvals(r)
    kappa_before = _kappa(singular)
    unaligned = (kappa_before, kappa_before, cosine, norm_u, norm_d)
    if norm_u <= zero_tol * norm_d:
        return 0.0, 1.0, (*unaligned, 'zero_u')
    if norm_d <= zero_tol * norm_u:
        return 1.0, 0.0, (*unaligned, 'zero_d')
    if float(r[1, 1]) <= collinear_tol * norm_d:
        return omega, 1 - omega, (*unaligned, 'collinear')
    _, singular, vh = torch.linalg.svd(r)
    sigma = singular[-1] if scale == 'min' else singular.square().mean().sqrt()
    mix = sigma * vh.T @ torch.diag(1 / singular) @ vh
    coeffs = mix @ r.new_tensor([omega, 1 - omega])
    kappa_after = _kappa(torch.linalg.svdvals(r @ mix))
    return float(coeffs[0]), float(coeffs[1]), (kappa_before, kappa_after, cosine, norm_u,
                                                norm_d, '')


class GMTA:
    """Writes the GMTA-aligned gradients of two task losses into `.grad`.

    `shared_params`: the parameters both tasks back-propagate through (backbone + FPN).
    `task_params`: `{'fusion': [...], 'detection': [...]}`, parameters only that task trains
    (either may be missing or empty). `omega` weights the fusion task, `1 - omega` detection;
    `scale` ('min' or 'rms') sets the length of the aligned columns (see the module docstring).
    Parameters without `requires_grad` are ignored; a parameter may appear in one list only.
    """

    def __init__(self, shared_params, task_params=None, omega=0.5, zero_tol=1e-12,
                 collinear_tol=1e-6, scale='min'):
        if not 0.0 <= omega <= 1.0:
            raise ValueError(f'GMTA omega must lie in [0, 1], got {omega}')
        if scale not in SCALES:
            raise ValueError(f'GMTA scale must be one of {SCALES}, got {scale!r}')
        self.scale = scale
        task_params = dict(task_params or {})
        unknown = set(task_params) - set(TASKS)
        if unknown:
            raise ValueError(f'GMTA task_params keys must be among {TASKS}, got {sorted(unknown)}')
        self.shared = [p for p in shared_params if p.requires_grad]
        self.specific = {t: [p for p in task_params.get(t, []) if p.requires_grad] for t in TASKS}
        seen = set()
        for p in self.shared + self.specific['fusion'] + self.specific['detection']:
            if id(p) in seen:
                raise ValueError('GMTA: a parameter appears in more than one parameter list')
            seen.add(id(p))
        if not seen:
            raise ValueError('GMTA needs at least one trainable parameter')
        self.omega = float(omega)
        self.zero_tol = float(zero_tol)
        self.collinear_tol = float(collinear_tol)

    def step(self, loss_u: torch.Tensor, loss_d: torch.Tensor, grad_scale: float = 1.0):
        """Compute both tasks' gradients, align the shared part and write every `.grad`.

        `loss_u`, `loss_d`: scalar losses sharing one graph (pass them already multiplied by a
        GradScaler's scale, and that scale as `grad_scale`, which only rescales the logged
        norms). The second backward frees the shared graph; what only `loss_u` used is freed
        when the caller drops `loss_u`. Returns a `GMTAStats`.
        """
        shared, fusion = self.shared, self.specific['fusion']
        detection = self.specific['detection']
        grads_u = _grads(loss_u, shared + fusion, retain_graph=True)
        grads_d = _grads(loss_d, shared + detection, retain_graph=False)
        n = len(shared)
        like = next(iter(shared + fusion + detection))
        flat = torch.cat([_flat(grads_u[:n], like), _flat(grads_d[:n], like),
                          _flat(grads_u[n:], like), _flat(grads_d[n:], like)])
        del grads_u, grads_d
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flat)
            flat /= dist.get_world_size()
        size = sum(p.numel() for p in shared)
        g_u, g_d = flat[:size], flat[size:2 * size]
        specific_u, specific_d = flat[2 * size:].split(
            [sum(p.numel() for p in fusion), sum(p.numel() for p in detection)])
        a, b, stats = align_coefficients(triangular_factor(g_u, g_d), self.omega,
                                         self.zero_tol, self.collinear_tol, self.scale)
        combined = a * g_u + b * g_d
        for params, source in ((shared, combined), (fusion, specific_u), (detection, specific_d)):
            for p, g in zip(params, _scatter(source, params)):
                p.grad = g.detach().clone()
        kappa_before, kappa_after, cosine, norm_u, norm_d, fallback = stats
        scale = float(grad_scale)
        return GMTAStats(kappa_before, kappa_after, cosine, norm_u / scale, norm_d / scale,
                         fallback)
