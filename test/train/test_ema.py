"""The weight average: known answers on a two-tensor module, the decay ramp, state round trip."""
import pytest
import torch

from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.train.ema import EMAConfig, ModelEMA


def _module(value: float) -> torch.nn.Module:
    m = torch.nn.BatchNorm1d(2)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def test_update_is_the_weighted_average_and_integer_buffers_are_copied():
    model = _module(1.0)
    ema = ModelEMA(model, EMAConfig(decay=0.9, warmup_steps=0))
    with torch.no_grad():
        model.weight.fill_(3.0)
    model.num_batches_tracked.fill_(7)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((2,), 0.9 * 1 + 0.1 * 3))
    assert int(ema.module.num_batches_tracked) == 7
    assert not ema.module.training and not ema.module.weight.requires_grad
    assert model.weight.requires_grad


def test_decay_ramps_up_to_its_setting():
    ema = ModelEMA(_module(0.0), EMAConfig(decay=0.99, warmup_steps=10))
    seen = []
    for _ in range(2000):
        seen.append(ema.decay())
        ema.updates += 1
    assert seen[0] == pytest.approx(1 / 10)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.99)


def test_first_update_with_warmup_mostly_takes_the_new_weights():
    model = _module(0.0)
    ema = ModelEMA(model, EMAConfig(decay=0.999, warmup_steps=10))
    with torch.no_grad():
        model.weight.fill_(10.0)
    ema.update(model)
    torch.testing.assert_close(ema.module.weight, torch.full((2,), 9.0))


def test_state_round_trip():
    model = _module(2.0)
    ema = ModelEMA(model, EMAConfig(decay=0.5))
    ema.update(_module(4.0))
    other = ModelEMA(_module(0.0), EMAConfig(decay=0.5))
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.module.weight, ema.module.weight)


@pytest.mark.parametrize('cfg', [EMAConfig(decay=1.0), EMAConfig(decay=-0.1),
                                 EMAConfig(decay=0.9, warmup_steps=-1)])
def test_bad_settings_are_refused(cfg):
    with pytest.raises(ConfigError, match='ema'):
        cfg.validate()
