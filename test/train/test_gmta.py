"""GMTA on toy problems whose gradients are known by hand."""
import gc
import json
import math
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

from efficientmfd_ros.train.gmta import GMTA


def _procrustes(g_u, g_d, omega):
    """Reference: thin SVD with numpy, G_hat = s_min U V^T, combined with (omega, 1 - omega)."""
    mat = np.stack([g_u, g_d], 1).astype(np.float64)
    u, s, vt = np.linalg.svd(mat, full_matrices=False)
    aligned = s.min() * u @ vt
    return aligned, omega * aligned[:, 0] + (1 - omega) * aligned[:, 1]


class TinyTwoTask:
    """h = W x (shared W 2x2); L_u = a (h0 + h1); L_d = c (h0 - 2 h1).

    By hand: dL_u/dW = a [1,1]^T x^T and dL_d/dW = c [1,-2]^T x^T, which conflict
    (their dot product is a c (1-2) |x|^2 < 0); dL_u/da = h0 + h1, dL_d/dc = h0 - 2 h1.
    """

    def __init__(self):
        self.w = torch.tensor([[1.0, -0.5], [0.25, 2.0]], requires_grad=True)
        self.a = torch.tensor(1.5, requires_grad=True)
        self.c = torch.tensor(0.5, requires_grad=True)
        self.x = torch.tensor([1.0, 2.0])

    def losses(self):
        h = self.w @ self.x
        return self.a * (h[0] + h[1]), self.c * (h[0] - 2 * h[1])

    def gmta(self, omega=0.5):
        return GMTA([self.w], {'fusion': [self.a], 'detection': [self.c]}, omega=omega)

    def hand_gradients(self):
        x = self.x.numpy().astype(np.float64)
        g_u = float(self.a.detach()) * np.outer([1, 1], x).ravel()
        g_d = float(self.c.detach()) * np.outer([1, -2], x).ravel()
        h = (self.w.detach() @ self.x).numpy()
        return g_u, g_d, h[0] + h[1], h[0] - 2 * h[1]


def test_written_grad_equals_hand_computation():
    toy = TinyTwoTask()
    g_u, g_d, grad_a, grad_c = toy.hand_gradients()
    stats = toy.gmta(omega=0.3).step(*toy.losses())
    _, expected = _procrustes(g_u, g_d, 0.3)
    np.testing.assert_allclose(toy.w.grad.numpy().ravel(), expected, rtol=1e-5, atol=1e-6)
    assert toy.a.grad.item() == pytest.approx(grad_a, rel=1e-6)
    assert toy.c.grad.item() == pytest.approx(grad_c, rel=1e-6)
    cosine = g_u @ g_d / np.linalg.norm(g_u) / np.linalg.norm(g_d)
    assert stats.cosine == pytest.approx(cosine, rel=1e-5)
    assert cosine < 0
    assert stats.norm_u == pytest.approx(np.linalg.norm(g_u), rel=1e-5)
    assert stats.norm_d == pytest.approx(np.linalg.norm(g_d), rel=1e-5)
    sv = np.linalg.svd(np.stack([g_u, g_d], 1), compute_uv=False)
    assert stats.kappa_before == pytest.approx(sv.max() / sv.min(), rel=1e-4)
    assert stats.fallback == ''


def test_conflicting_gradients_come_out_orthogonal_equal_norm_kappa_one():
    columns = []
    for omega in (1.0, 0.0):
        toy = TinyTwoTask()
        stats = toy.gmta(omega=omega).step(*toy.losses())
        columns.append(toy.w.grad.numpy().ravel().astype(np.float64))
        assert stats.kappa_before > 2
        assert stats.kappa_after == pytest.approx(1.0, abs=1e-6)
    hat_u, hat_d = columns
    g_u, g_d, _, _ = TinyTwoTask().hand_gradients()
    s_min = np.linalg.svd(np.stack([g_u, g_d], 1), compute_uv=False).min()
    assert abs(hat_u @ hat_d) < 1e-5 * s_min ** 2
    assert np.linalg.norm(hat_u) == pytest.approx(s_min, rel=1e-5)
    assert np.linalg.norm(hat_d) == pytest.approx(s_min, rel=1e-5)
    aligned, _ = _procrustes(g_u, g_d, 0.5)
    np.testing.assert_allclose(hat_u, aligned[:, 0], rtol=1e-5, atol=1e-6)


def test_a_task_gradient_1e6_times_smaller_is_aligned_not_dropped():
    # Early in training the detection gradient is ~1e5 times the fusion one: still two tasks.
    rng = np.random.default_rng(0)
    g_u = rng.normal(size=1000) * 1e-3 / np.sqrt(1000)
    g_d = (0.3 * g_u / np.linalg.norm(g_u) + rng.normal(size=1000) / np.sqrt(1000)) * 1e3
    w = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
    stats = GMTA([w]).step((w * torch.from_numpy(g_u)).sum(), (w * torch.from_numpy(g_d)).sum())
    _, expected = _procrustes(g_u, g_d, 0.5)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-6, atol=1e-15)
    assert stats.kappa_before > 1e5 and stats.kappa_after == pytest.approx(1.0, abs=1e-9)
    assert stats.fallback == ''


def test_nearly_parallel_gradients_keep_an_accurate_s_min():
    # sin(angle) = 2e-5: the Gram matrix G^T G would square kappa ~ 2e5 and lose ~1e-6 of s_min.
    rng = np.random.default_rng(1)
    g_u = rng.normal(size=1000)
    g_u /= np.linalg.norm(g_u)
    side = rng.normal(size=1000)
    side -= (side @ g_u) * g_u
    g_d = 3.0 * (g_u + 2e-5 * side / np.linalg.norm(side))
    w = torch.zeros(1000, dtype=torch.float64, requires_grad=True)
    stats = GMTA([w]).step((w * torch.from_numpy(g_u)).sum(), (w * torch.from_numpy(g_d)).sum())
    _, expected = _procrustes(g_u, g_d, 0.5)
    np.testing.assert_allclose(w.grad.numpy(), expected, rtol=1e-9, atol=1e-18)
    assert stats.fallback == '' and stats.kappa_before > 1e5


def test_orthogonal_equal_norm_gradients_keep_their_direction():
    w = torch.zeros(4, requires_grad=True)
    g_u = torch.tensor([3.0, 0.0, 0.0, 0.0])
    g_d = torch.tensor([0.0, 0.0, -3.0, 0.0])
    for omega in (1.0, 0.5):
        w.grad = None
        stats = GMTA([w], omega=omega).step((w * g_u).sum(), (w * g_d).sum())
        expected = omega * g_u + (1 - omega) * g_d
        torch.testing.assert_close(w.grad, expected)
        assert stats.kappa_before == pytest.approx(1.0)
        assert stats.cosine == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('zero_task', ['u', 'd'])
def test_zero_task_gradient_falls_back_to_the_other_unchanged(zero_task):
    w = torch.tensor([0.5, -1.0, 2.0], requires_grad=True)
    g = torch.tensor([1.0, 2.0, -0.5])
    live = (w * g).sum()
    dead = (w * 0).sum()
    losses = (dead, live) if zero_task == 'u' else (live, dead)
    stats = GMTA([w], omega=0.5).step(*losses)
    assert torch.isfinite(w.grad).all()
    torch.testing.assert_close(w.grad, g)
    assert stats.fallback == f'zero_{zero_task}'
    assert not math.isnan(stats.cosine)


def test_loss_without_graph_and_both_zero_give_no_nan():
    w = torch.ones(3, requires_grad=True)
    GMTA([w]).step((w * 2).sum(), torch.tensor(0.0))
    torch.testing.assert_close(w.grad, torch.full((3,), 2.0))
    stats = GMTA([w]).step((w * 0).sum(), (w * 0).sum())
    assert torch.equal(w.grad, torch.zeros(3))
    assert stats.fallback == 'zero_both'


def test_single_shared_number_and_no_shared_parameters():
    w = torch.tensor([2.0], requires_grad=True)
    head = torch.tensor([1.0], requires_grad=True)
    stats = GMTA([w], omega=0.25).step((3 * w).sum(), (-w * head).sum())
    assert torch.isfinite(w.grad).all()
    assert stats.fallback == 'collinear'
    torch.testing.assert_close(w.grad, torch.tensor([0.25 * 3 + 0.75 * -1.0]))
    only = torch.tensor([1.0, 1.0], requires_grad=True)
    GMTA([], {'fusion': [only]}).step((only * 4).sum(), torch.tensor(0.0))
    torch.testing.assert_close(only.grad, torch.full((2,), 4.0))


def test_rms_scale_keeps_the_direction_and_the_frobenius_norm():
    # Gradients 1e5 apart, as detection vs fusion early in training: 'min' shrinks the shared
    # update to ~the small one's norm, 'rms' keeps G's scale; both write the same direction.
    rng = np.random.default_rng(1)
    g_u = rng.normal(size=500) * 1e-4
    g_d = rng.normal(size=500) * 10.0
    written = {}
    for scale in ('min', 'rms'):
        w = torch.zeros(500, dtype=torch.float64, requires_grad=True)
        stats = GMTA([w], scale=scale).step((w * torch.from_numpy(g_u)).sum(),
                                            (w * torch.from_numpy(g_d)).sum())
        assert stats.kappa_after == pytest.approx(1.0, abs=1e-9)
        written[scale] = w.grad.numpy()
    s = np.linalg.svd(np.stack([g_u, g_d], 1), compute_uv=False)
    ratio = np.sqrt((s ** 2).mean()) / s.min()
    assert ratio > 1e4
    np.testing.assert_allclose(written['rms'], written['min'] * ratio, rtol=1e-6)
    # omega = 1/2 of two orthogonal columns of length sigma: |update| = sigma / sqrt(2).
    assert np.linalg.norm(written['rms']) == pytest.approx(
        np.linalg.norm(np.stack([g_u, g_d])) / 2, rel=1e-6)


def test_bad_arguments_are_rejected():
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(ValueError, match='omega'):
        GMTA([w], omega=1.5)
    with pytest.raises(ValueError, match='scale'):
        GMTA([w], scale='max')
    with pytest.raises(ValueError, match='more than one'):
        GMTA([w], {'fusion': [w]})
    with pytest.raises(ValueError, match='keys'):
        GMTA([w], {'segmentation': []})


def _live_tensors():
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))


def test_no_graph_or_tensor_leak_over_fifty_applications():
    torch.manual_seed(0)
    shared = torch.nn.Linear(8, 8)
    head_u, head_d = torch.nn.Linear(8, 1), torch.nn.Linear(8, 1)
    gmta = GMTA(shared.parameters(), {'fusion': list(head_u.parameters()),
                                      'detection': list(head_d.parameters())})
    params = [*shared.parameters(), *head_u.parameters(), *head_d.parameters()]
    optim = torch.optim.SGD(params, lr=1e-3)

    def one_step():
        optim.zero_grad(set_to_none=True)
        features = torch.relu(shared(torch.randn(4, 8)))
        stats = gmta.step(head_u(features).pow(2).mean(), head_d(features).abs().mean())
        optim.step()
        return weakref.ref(features), stats

    one_step()
    before = _live_tensors()
    refs = [one_step()[0] for _ in range(50)]
    assert _live_tensors() <= before
    assert all(ref() is None for ref in refs), 'an activation (and so a graph) was kept alive'


DDP_SCRIPT = """
import json
import torch
import torch.distributed as dist
from efficientmfd_ros.train.gmta import GMTA

dist.init_process_group('gloo')
rank = dist.get_rank()
w = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
head = torch.tensor([2.0], requires_grad=True)
g_u = torch.tensor([[1.0, 2.0, 0.0], [3.0, 0.0, -1.0]])[rank]
g_d = torch.tensor([[-1.0, 1.0, 1.0], [0.0, -2.0, 1.0]])[rank]
stats = GMTA([w], {'detection': [head]}).step((w * g_u).sum(),
                                               (w * g_d).sum() + (head * (rank + 1.0)).sum())
gathered = [None, None]
dist.all_gather_object(gathered, {'w': w.grad.tolist(), 'head': head.grad.tolist(),
                                  'cosine': stats.cosine})
if rank == 0:
    print('RESULT ' + json.dumps(gathered))
dist.destroy_process_group()
"""


def test_ddp_ranks_average_task_gradients_before_alignment(tmp_path, project_root):
    """Two gloo processes with different local gradients write the same, averaged update."""
    script = tmp_path / 'gmta_ddp.py'
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         str(script)], cwd=project_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith('RESULT '))
    rank0, rank1 = json.loads(line[len('RESULT '):])
    assert rank0 == rank1
    g_u = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, -1.0]]).mean(0)
    g_d = np.array([[-1.0, 1.0, 1.0], [0.0, -2.0, 1.0]]).mean(0)
    _, expected = _procrustes(g_u, g_d, 0.5)
    np.testing.assert_allclose(rank0['w'], expected, rtol=1e-5, atol=1e-6)
    assert rank0['head'] == pytest.approx([1.5])
