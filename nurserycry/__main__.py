import sys

from nurserycry.cli import main

sys.exit(main())
