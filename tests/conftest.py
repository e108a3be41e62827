import hashlib
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def nuclei_path():
    from voxseg.samples import sample_path

    return sample_path("nuclei")


def file_digest(path) -> str:
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def digest():
    """sha256 of a file or of every file below a folder."""
    return file_digest
