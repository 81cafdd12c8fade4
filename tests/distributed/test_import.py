"""``import holejax`` (and the kernels) load no Dask: it is an optional extra, imported when a cluster is used."""

import subprocess
import sys


def test_holejax_and_its_kernels_import_no_dask():
    code = (
        "import holejax, holejax.distributed, holejax.metrics\n"
        "import sys\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
