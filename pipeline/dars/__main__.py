import sys

from dars.cli import main

# guarded: vLLM starts its engine core with multiprocessing, and a spawned child imports
# this module again (as __mp_main__) under `python -m dars sample`
if __name__ == "__main__":
    sys.exit(main())
