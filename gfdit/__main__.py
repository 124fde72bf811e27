import sys

from gfdit.cli import main

sys.exit(main())
