from pallet.runtime.cli import main

raise SystemExit(main())
