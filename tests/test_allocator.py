"""The malloc settings of the package's own processes: set once, and they change no result."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

SCRIPT = """
from nasenv.allocator import keep_freed_memory
from nasenv.results import TrainConfig
from nasenv.space import Architecture
from nasenv.testing import make_tiny_dataset
from nasenv.train import TrainingContext, train_architecture

arch = Architecture.from_string(
    "layers=lgconv-sage:mean,combine=mean,dim=16,items=id+text,loss=bpr,lr=0.02,reg=0.0001"
)
context = TrainingContext(make_tiny_dataset(), k=5)
config = TrainConfig(max_epochs=4, patience=4, batch_size=64, threads=1)
before = train_architecture(arch, context, 3, config)
print(keep_freed_memory(), keep_freed_memory())
after = train_architecture(arch, context, 3, config)
same = before.val_recall == after.val_recall
print(same and before.test_recall_at_best == after.test_recall_at_best)
"""


@pytest.mark.skipif(platform.system() != "Linux", reason="glibc's mallopt")
def test_keeping_freed_memory_is_set_once_and_changes_no_result():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "True"]
