"""Test-session settings that must precede the first `import torch`."""

import os

# Same as main.py: alignment-independent MKL GEMMs, so in-process resumes repeat bit for bit.
os.environ.setdefault("MKL_CBWR", "AUTO")
