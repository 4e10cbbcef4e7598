"""Fixtures for the network tests: the tiny test configuration and inputs."""
import pytest
import torch

from efficientmfd_ros.model import ModelConfig, build_model


@pytest.fixture
def tiny_cfg(project_root):
    """A fresh tiny ModelConfig (resnet18, 16-channel FPN, 10 proposals, 2 stages, 64x96)."""
    return ModelConfig.from_yaml(project_root / 'config' / 'model' / 'efficientmfd_tiny_test.yaml')


@pytest.fixture
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    return build_model(tiny_cfg)


@pytest.fixture
def tiny_inputs():
    """`(rgb (2,3,64,96), thermal (2,1,64,96))` in [0,1], fixed."""
    g = torch.Generator().manual_seed(3)
    return torch.rand(2, 3, 64, 96, generator=g), torch.rand(2, 1, 64, 96, generator=g)
