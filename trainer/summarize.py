"""`python -m trainer.summarize <sweep dir>`: rebuild a sweep's ranking table and summary files."""

import sys

from .sweeps import main_summarize

if __name__ == "__main__":
    sys.exit(main_summarize(sys.argv[1:]))
