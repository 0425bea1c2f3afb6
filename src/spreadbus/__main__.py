import sys

from spreadbus.cli import main

sys.exit(main())
