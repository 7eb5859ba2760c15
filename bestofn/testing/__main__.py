"""``python -m bestofn.testing DIR``: write the tiny generator and one tiny PRM per format into DIR."""

import sys
from pathlib import Path

from .models import (make_tiny_generator, make_tiny_math_shepherd_prm, make_tiny_prm, make_tiny_qwen_math_prm,
                     make_tiny_rlhflow_prm)

out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
print(make_tiny_generator(out / "generator"))
print(make_tiny_prm(out / "prm"))  # skywork
print(make_tiny_qwen_math_prm(out / "qwen-math-prm"))
print(make_tiny_rlhflow_prm(out / "rlhflow-prm"))
print(make_tiny_math_shepherd_prm(out / "math-shepherd-prm"))
