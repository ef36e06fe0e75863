"""Atomic writes (file modes, full disk, stale temp files) and checkpoints (safe loading, RNG, order)."""
import errno
import os
import random
import stat

import numpy as np
import pytest
import torch

from pad_bench.errors import UserError
from pad_bench.io import atomic_write, atomic_write_text, remove_stale_temp_files
from pad_bench.training.checkpoint import (KEEP, list_checkpoints, load_checkpoint, load_latest_checkpoint,
                                           load_model_state, rng_state, save_checkpoint, set_rng_state)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_honour_the_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)})
    for path in (tmp_path / "a.txt", tmp_path / "step001.pt"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644  # 0o666 & ~0o022, like open(); mkstemp gives 0o600


def test_full_disk_is_a_user_error_naming_the_folder_and_keeps_the_old_file(tmp_path):
    atomic_write_text(tmp_path / "metrics.csv", "old")

    def full(tmp):
        with open(tmp, "w") as f:
            f.write("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match=f"no space left on {tmp_path}"):
        atomic_write(tmp_path / "metrics.csv", full)
    assert (tmp_path / "metrics.csv").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # no temp file left


def test_a_full_disk_during_torch_save_is_an_oserror_we_catch(tmp_path, monkeypatch):
    """torch.save to a path raises an opaque RuntimeError on ENOSPC; through a file object it is OSError."""
    import builtins

    real_open = builtins.open

    def open_dev_full(path, mode="r", *a, **k):
        return real_open("/dev/full", mode, *a, **k) if str(path).endswith(".tmp") and "b" in mode else \
            real_open(path, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", open_dev_full)
    with pytest.raises(UserError, match="no space left on"):
        save_checkpoint(tmp_path, 1, {"w": torch.zeros(100_000)})
    assert not list(tmp_path.iterdir())


def test_stale_temp_files_are_removed(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / "checkpoints" / ".step001.pt.ab12.tmp", tmp_path / ".metrics.csv.x.tmp"]
    for p in stale + [tmp_path / "checkpoints" / "step001.pt"]:
        p.write_text("x")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted(stale)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step001.pt"]


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # harmless stand-in for code run by unpickling


def test_a_crafted_checkpoint_is_refused_without_running_its_code(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"strategy": _Payload(str(marker))}, tmp_path / "step001.pt")
    with pytest.raises(UserError, match="step001.pt cannot be loaded .*refused for safety"):
        load_latest_checkpoint(tmp_path)
    assert not marker.exists()


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    save_checkpoint(tmp_path, 1, {"rng": rng_state()})
    expected = (torch.rand(3), np.random.normal(size=3), random.random())
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    set_rng_state(load_checkpoint(tmp_path / "step001.pt")["rng"])
    got = (torch.rand(3), np.random.normal(size=3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_checkpoints_order_and_pruning_keep_what_resume_needs(tmp_path):
    for step in (1, 2):
        save_checkpoint(tmp_path, step, {"s": step})
    save_checkpoint(tmp_path, 2, {"e": 1}, epoch=1)  # inside experience 3
    save_checkpoint(tmp_path, 2, {"e": 2}, epoch=2)
    save_checkpoint(tmp_path, 2, {"e": 3}, epoch=3)
    names = [p.name for p in list_checkpoints(tmp_path)]
    # the boundary before the mid-experience ones stays: resuming them replays from it
    assert names == ["step001.pt", "step002.pt", "step003-epoch002.pt", "step003-epoch003.pt"]
    assert load_latest_checkpoint(tmp_path) == {"e": 3}
    save_checkpoint(tmp_path, 3, {"s": 3})
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"step{s:03d}.pt" for s in range(4 - KEEP, 4)]


def test_a_checkpoint_of_another_model_is_a_one_line_error():
    small, big = torch.nn.Linear(2, 3), torch.nn.Linear(4, 3)
    with pytest.raises(UserError, match="step002.pt was written by a different model") as e:
        load_model_state(small, big.state_dict(), "run/checkpoints/step002.pt")
    assert "\n" not in str(e.value)
