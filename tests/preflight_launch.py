"""Run by tests/test_preflight.py under `accelerate launch`: `mmmae preflight` with the arguments
given, and on the rank named by env ODD_RANK (if any) after sleeping ODD_SLEEP seconds and with
the extra binding ODD_PARAM, if set."""

import os
import sys
import time

from mmmae.cli import main

if __name__ == "__main__":
    odd = os.environ.get("RANK") == os.environ.get("ODD_RANK")
    time.sleep(float(os.environ.get("ODD_SLEEP", 0)) if odd else 0)
    extra = ["--gin_param", os.environ["ODD_PARAM"]] if odd and "ODD_PARAM" in os.environ else []
    main(["preflight", *sys.argv[1:], *extra])
