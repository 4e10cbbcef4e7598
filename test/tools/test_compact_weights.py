"""efficientmfd_compact_weights: a float16 copy that loads as float32, keeps its metadata, and
detects what the original detects."""
import pytest

torch = pytest.importorskip('torch')

from efficientmfd_ros.model import load_checkpoint, read_checkpoint  # noqa: E402
from efficientmfd_ros.model.factory import save_checkpoint  # noqa: E402
from efficientmfd_ros.tools.compact_weights import main, output_drift  # noqa: E402


def test_half_copy_is_smaller_loads_as_float32_and_keeps_metadata(tiny_weights, tmp_path,
                                                                  capsys):
    model, _, _ = load_checkpoint(tiny_weights)
    # Random box-delta layers move boxes by large factors at every stage, so float16 rounding
    # would be amplified chaotically; a trained head's refinements are small.
    with torch.no_grad():
        for stage in model.head.stages:
            stage.box_deltas.weight.mul_(0.1)
            stage.box_deltas.bias.mul_(0.1)
    source = save_checkpoint(tmp_path / 'full.pt', model,
                             extra={'train_config': {'seed': 3}, 'metrics': {'map50': 0.5}})
    out = tmp_path / 'half.pt'
    assert main(['--weights', str(source), '--out', str(out)]) == 0
    assert 'largest change' in capsys.readouterr().out
    stored = read_checkpoint(out)
    floats = [v for v in stored['model'].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert stored['train_config'] == {'seed': 3} and stored['metrics'] == {'map50': 0.5}
    assert stored['class_names'] == ['person', 'car']
    assert out.stat().st_size < 0.6 * source.stat().st_size
    compact, _, _ = load_checkpoint(out)
    assert all(p.dtype == torch.float32 for p in compact.parameters())
    box_px, score = output_drift(model, compact)
    assert 0 < box_px < 1.0 and score < 0.01


def test_num_proposals_changes_only_the_deployed_box_count(tiny_weights, tmp_path, capsys):
    model, cfg, _ = load_checkpoint(tiny_weights)
    out = tmp_path / 'more.pt'
    wanted = cfg.head.num_proposals * 2
    assert main(['--weights', str(tiny_weights), '--out', str(out),
                 '--num-proposals', str(wanted)]) == 0
    assert f'{wanted} proposals' in capsys.readouterr().out
    compact, compact_cfg, _ = load_checkpoint(out)
    assert compact_cfg.head.num_proposals == wanted
    assert compact.make_noise_boxes(1).shape[1] == wanted
    assert compact_cfg.head.hidden_dim == cfg.head.hidden_dim
    logits, boxes, _ = compact(*[torch.rand(1, c, *cfg.input_size) for c in (3, 1)],
                               compact.make_noise_boxes(1), run_fusion=False)
    assert logits.shape[1] == boxes.shape[1] == wanted
    assert main(['--weights', str(tiny_weights), '--out', str(tmp_path / 'bad.pt'),
                 '--num-proposals', '0']) == 2
    assert 'num_proposals' in capsys.readouterr().err
    assert not (tmp_path / 'bad.pt').exists()


def test_input_size_changes_only_the_deployed_input(tiny_weights, tmp_path, capsys):
    _, cfg, _ = load_checkpoint(tiny_weights)
    h, w = (v + 32 for v in cfg.input_size)
    out = tmp_path / 'larger.pt'
    assert main(['--weights', str(tiny_weights), '--out', str(out),
                 '--input-size', str(h), str(w)]) == 0
    assert f'input {h}x{w}' in capsys.readouterr().out
    compact, compact_cfg, _ = load_checkpoint(out)
    assert tuple(compact_cfg.input_size) == (h, w)
    assert compact_cfg.head == cfg.head and compact_cfg.fpn == cfg.fpn
    assert read_checkpoint(out)['model'].keys() == read_checkpoint(tiny_weights)['model'].keys()
    assert main(['--weights', str(tiny_weights), '--out', str(tmp_path / 'bad.pt'),
                 '--input-size', str(h + 1), str(w)]) == 2
    assert 'input_size' in capsys.readouterr().err
    assert not (tmp_path / 'bad.pt').exists()


def test_values_beyond_float16_are_refused(tiny_weights, tmp_path):
    model, _, _ = load_checkpoint(tiny_weights)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = 1e6
    with pytest.raises(ValueError, match='range of torch.float16'):
        save_checkpoint(tmp_path / 'x.pt', model, weights_dtype=torch.float16)
    assert not (tmp_path / 'x.pt').exists()


def test_unreadable_input_exits_2(tmp_path, capsys):
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a checkpoint')
    assert main(['--weights', str(junk), '--out', str(tmp_path / 'o.pt')]) == 2
    assert 'cannot read checkpoint' in capsys.readouterr().err
