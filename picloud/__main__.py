"""`python -m picloud` is the `picloud` command."""

from picloud.cli import main

raise SystemExit(main())
