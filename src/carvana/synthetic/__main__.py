"""``python -m carvana.synthetic``: the same as the ``carvana-synthetic`` command."""

from carvana.synthetic.cli import main

raise SystemExit(main())
