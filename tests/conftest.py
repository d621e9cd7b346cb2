"""Test-session settings: some must precede the first `import torch`."""

import os

# Same as main.py: alignment-independent MKL GEMMs, so in-process resumes repeat bit for bit.
os.environ.setdefault("MKL_CBWR", "AUTO")

import pytest  # noqa: E402  (after the environment above)
import torch  # noqa: E402

TRAINING_TEST_MODULES = ("test_training", "test_run_safety", "test_ablate")


@pytest.fixture(autouse=True)
def one_thread(request):
    """One intra-op thread for the tests that train: on a shared 2-core machine, spinning thread pools make
    tiny steps 10-50x slower."""
    if request.module.__name__.rsplit(".", 1)[-1] not in TRAINING_TEST_MODULES:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
