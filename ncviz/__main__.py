from ncviz.cli import main

raise SystemExit(main())
