from pallet.run.cli import main

raise SystemExit(main())
