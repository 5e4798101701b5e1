import sys

from dars.cli import main

sys.exit(main())
