"""``python -m service`` = ``lstm-service``."""

from service.cli import main

raise SystemExit(main())
