#!/usr/bin/env python3
"""Start a zmqtrade stack: ``python launch.py topology.yaml [--check] [--duration S]``."""
import sys

from zmqtrade.cli import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], prog="launch.py"))
