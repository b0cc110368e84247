"""The `jorge` command: run the platform, one service, migrations, topics and status."""

import os as _os

# prometheus_client opens its files in PROMETHEUS_MULTIPROC_DIR as soon as it is imported (the
# command's modules import it): the directory must exist before any of them loads.
if _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _os.makedirs(_os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
