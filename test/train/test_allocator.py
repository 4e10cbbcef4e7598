"""The allocator tuning applies on glibc and is harmless to repeat."""
import platform

import pytest

from efficientmfd_ros.train.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='needs glibc')
def test_glibc_accepts_the_settings_twice():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
