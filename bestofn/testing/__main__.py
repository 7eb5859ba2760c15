"""``python -m bestofn.testing DIR``: write the tiny models into DIR/generator and DIR/prm."""

import sys
from pathlib import Path

from .models import make_tiny_generator, make_tiny_prm

out = Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")
print(make_tiny_generator(out / "generator"))
print(make_tiny_prm(out / "prm"))
