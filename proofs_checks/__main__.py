import sys

from contraction.cli import main

sys.exit(main(["verify", *sys.argv[1:]]))
