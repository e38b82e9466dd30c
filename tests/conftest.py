import os
import tempfile

# One torch / OpenMP thread for the tests and the processes they start, unless the caller says otherwise: torch's
# thread teams spin while they wait, and on a shared CI machine that made the suite 5x slower beside two busy
# processes (a fair share would be 2x). The envs already run their own ops on one thread; this covers the rest (agents,
# SB3 policies, the tests' own tensors). Tests that vary the thread count set it themselves.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

if os.environ["OMP_NUM_THREADS"] == "1":
    torch.set_num_threads(1)  # in case torch was imported before this file

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Every device-dependent test runs on each available device ("cpu" here; "cuda" where there is a GPU)."""
    return request.param
