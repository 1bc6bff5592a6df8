import sys

from zmqtrade.cli import main

sys.exit(main())
