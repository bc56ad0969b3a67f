from __future__ import annotations

from bifrost_asgi.cli.main import main

raise SystemExit(main())
