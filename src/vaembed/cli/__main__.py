"""`python -m vaembed.cli`: the `vaembed` command."""

from __future__ import annotations

import sys

from vaembed.cli.commands import main

sys.exit(main())
