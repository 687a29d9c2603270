"""Where an example's data is: its file, or a sample made by the example's own generator.

``credit-risk-loans`` ships a generator (``make_loans.py``) instead of data; the tests use
40,000 generated loans, written once per generator version under the temp folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path

from tabops.project import Project, resolve_data_path

GENERATED_ROWS = 40_000
GENERATORS = {"credit-risk-loans": "make_loans.py"}


def example_data_path(project: Project, folder: Path) -> Path:
    """The example's data file, generated first when the example ships a generator."""
    path = resolve_data_path(project, folder)
    generator = GENERATORS.get(folder.name)
    if path.is_file() or generator is None:
        return path
    script = folder / generator
    digest = hashlib.sha256(script.read_bytes()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / "tabops-example-data"
    generated = cache / f"{folder.name}-{digest}.parquet"
    if not generated.is_file():
        spec = importlib.util.spec_from_file_location(f"generator_{digest}", script)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        temp = generated.with_name(f".{os.getpid()}.{generated.name}")
        module.write(module.generate(rows=GENERATED_ROWS, seed=0), temp)
        os.replace(temp, generated)  # another test process may be writing the same file
    return generated
