"""``python -m forecast.rollout CONFIG.yaml [key=value ...]``: run a rollout from a config file.

The same as ``forecast rollout --config CONFIG.yaml``, without the command-line front end
(used by the resume tests, which kill it mid-way).
"""

from __future__ import annotations

import sys

from forecast.config import RolloutConfig, load_config
from forecast.logging_setup import configure_logging
from forecast.rollout import rollout


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m forecast.rollout CONFIG.yaml [key=value ...]", file=sys.stderr)
        return 2
    configure_logging(-1)
    path = rollout(load_config(RolloutConfig, argv[0], argv[1:]))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
