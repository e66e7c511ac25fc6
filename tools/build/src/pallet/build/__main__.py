from pallet.build.cli import main

raise SystemExit(main())
