"""onnxruntime backend: runs an exported graph (see ``export.py``) described by its sidecar JSON.

CPU uses ``CPUExecutionProvider``. On a CUDA device the ``CUDAExecutionProvider`` is required (an
explicit request never falls back to the CPU silently); inputs and outputs are then bound to torch
CUDA tensors with IO binding, and onnxruntime runs on torch's current stream, so nothing crosses to
the host until postprocessing. ``fuse=False`` fetches only the detection outputs.
"""
from pathlib import Path
import time
from types import ModuleType
from typing import Any

import numpy as np
import torch

from efficientmfd_ros.runtime.backend_base import Backend, NetworkOutput, check_precision
from efficientmfd_ros.runtime.errors import BackendUnavailableError, ModelFileError
from efficientmfd_ros.runtime.export import check_io_contract, model_info, read_sidecar
from efficientmfd_ros.runtime.threads import ort_cpu_options
from efficientmfd_ros.runtime.timing import StageTimer


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            'the onnxruntime backend needs the onnxruntime package (pip install onnxruntime, or '
            'onnxruntime-gpu for CUDA); it is not installed') from exc
    return onnxruntime


def cuda_provider_available() -> bool:
    try:
        return 'CUDAExecutionProvider' in import_onnxruntime().get_available_providers()
    except BackendUnavailableError:
        return False


class OnnxRuntimeBackend(Backend):
    name = 'onnxruntime'

    def __init__(self, onnx_path: str | Path, device: str | torch.device = 'cpu',
                 precision: str = 'fp32', threads: int = 0,
                 detect_only_path: str | Path | None = None) -> None:
        """``precision`` must match the export (``fp16`` needs a ``--fp16`` export);
        ``threads=0``: as many intra-op threads as this process's CPUs, without spin-waiting
        (``runtime/threads.py``). ``detect_only_path``: an export of the same weights without
        the fusion output, run for pairs that need no fused image (onnxruntime computes the
        whole graph whatever outputs are asked for, and fusion is ~20 % of it on a CPU)."""
        ort = import_onnxruntime()
        check_precision(precision)
        self.device = torch.device(device)
        self.meta = read_sidecar(onnx_path)
        if self.meta['precision'] != precision:
            raise ModelFileError(f'{onnx_path} was exported as {self.meta["precision"]}, but '
                                 f'precision {precision} was requested')
        check_io_contract(onnx_path, self.meta)
        self.precision = precision
        self.info = model_info(self.meta)
        options = ort_cpu_options(ort, threads)
        options.log_severity_level = 3
        if self.device.type == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise BackendUnavailableError(
                    'device is CUDA but onnxruntime has no CUDAExecutionProvider (install '
                    'onnxruntime-gpu), or use device cpu')
            index = self.device.index if self.device.index is not None \
                else torch.cuda.current_device()
            self.device = torch.device('cuda', index)
            stream = torch.cuda.current_stream(self.device).cuda_stream
            providers = [('CUDAExecutionProvider', {'device_id': index,
                                                    'user_compute_stream': str(stream)})]
        elif self.device.type == 'cpu':
            providers = [('CPUExecutionProvider', {})]
        else:
            raise BackendUnavailableError(f'onnxruntime backend: unsupported device {device}')
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.detect_session = None
        if detect_only_path is not None:
            detect_meta = read_sidecar(detect_only_path)
            same = all(detect_meta.get(k) == self.meta.get(k)
                       for k in ('checkpoint_sha256', 'input_size', 'precision'))
            if not same or detect_meta['fusion']:
                raise ModelFileError(f'{detect_only_path} is not a fusion-free export of the '
                                     f'weights of {onnx_path} at the same size and precision')
            self.detect_session = ort.InferenceSession(str(detect_only_path), options,
                                                       providers=providers)
        self._outputs: dict[str, torch.Tensor] = {}

    def run(self, rgb: torch.Tensor, thermal: torch.Tensor, noise_boxes: torch.Tensor, fuse: bool,
            timer: StageTimer) -> NetworkOutput:
        names = ['pred_logits', 'pred_boxes'] + (['fused_rgb'] if fuse and self.info.has_fusion
                                                 else [])
        feeds = {'rgb': rgb, 'thermal': thermal, 'noise_boxes': noise_boxes}
        # session.run is synchronous, so wall time around it is the network's time.
        t0 = time.perf_counter()
        session = self.session if 'fused_rgb' in names or self.detect_session is None \
            else self.detect_session
        if self.device.type == 'cuda':
            results = self._run_cuda(session, feeds, names)
        else:
            arrays = session.run(names, {k: np.ascontiguousarray(v.float().numpy())
                                         for k, v in feeds.items()})
            results = [torch.from_numpy(a) for a in arrays]
        timer.add_ms('network', (time.perf_counter() - t0) * 1e3)
        return NetworkOutput(results[0], results[1], results[2] if len(results) > 2 else None)

    def _run_cuda(self, session: Any, feeds: dict[str, torch.Tensor],
                  names: list[str]) -> list[torch.Tensor]:
        binding = session.io_binding()
        index = self.device.index
        keep = []
        for name, tensor in feeds.items():
            tensor = tensor.float().contiguous()
            keep.append(tensor)
            binding.bind_input(name, 'cuda', index, np.float32, tuple(tensor.shape),
                               tensor.data_ptr())
        outs = []
        for name in names:
            out = self._outputs.get(name)
            if out is None:
                shape = next(o['shape'] for o in self.meta['outputs'] if o['name'] == name)
                out = torch.empty(shape, dtype=torch.float32, device=self.device)
                self._outputs[name] = out
            binding.bind_output(name, 'cuda', index, np.float32, tuple(out.shape), out.data_ptr())
            outs.append(out)
        session.run_with_iobinding(binding)
        return outs
