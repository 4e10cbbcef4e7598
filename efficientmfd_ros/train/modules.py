"""The model's top-level modules by config name: which ones train, which take GMTA's task
gradients, and loading a checkpoint's weights into all but some of them (`init_weights`,
`init_exclude`). ConfigError names the config key behind a bad module name or weight file."""
from efficientmfd_ros.core.config_io import ConfigError
from efficientmfd_ros.model.factory import read_checkpoint


def top_modules(model, names, what: str) -> list:
    """The top-level submodules of `model` called `names`; ConfigError naming the config key
    `what` for a name that is not one."""
    children = dict(model.named_children())
    for name in names:
        if name not in children:
            raise ConfigError(f'{what}: the model has no module {name!r}')
    return [children[name] for name in names]


def module_params(model, names):
    """The trainable parameters of the top-level modules `names` (GMTA's module lists)."""
    return [p for module in top_modules(model, names, 'gmta') for p in module.parameters()
            if p.requires_grad]


def load_init_weights(model, path, exclude=()):
    """Load `path`'s model weights into `model`, except the top-level modules in `exclude`, which
    keep their fresh initialisation. ConfigError for any other missing, unexpected or misshapen
    tensor."""
    state = read_checkpoint(path)['model']
    top_modules(model, exclude, 'init_exclude')
    skipped = tuple(f'{name}.' for name in exclude)
    state = {k: v for k, v in state.items() if not k.startswith(skipped)}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ConfigError(f'init_weights {path}: {exc}') from exc
    missing = [k for k in result.missing_keys if not k.startswith(skipped)]
    if missing or result.unexpected_keys:
        raise ConfigError(f'init_weights {path}: missing {missing[:5]}, unexpected '
                          f'{result.unexpected_keys[:5]}')


def freeze_all_but(model, names) -> list:
    """Only the top-level modules `names` keep `requires_grad`; returns the other top-level
    modules, which the trainer keeps in eval mode (BatchNorm statistics frozen too). ConfigError
    for an unknown name."""
    top_modules(model, names, 'trainable_modules')
    frozen = [module for name, module in model.named_children() if name not in names]
    for module in frozen:
        module.requires_grad_(False)
    return frozen
