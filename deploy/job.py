"""The Caltech transfer-learning demo as a cluster job: ``python job.py --data s3://bucket/photos/``.

Submitted with ``framelab submit --address http://<head>:8265 --working-dir deploy -- python job.py ...``;
inside the cluster it joins the running Ray (``address="auto"``).
"""

from __future__ import annotations

import sys

from framelab.toolkits.demo import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--address" not in args:
        args += ["--address", "auto"]
    sys.exit(main(args))
