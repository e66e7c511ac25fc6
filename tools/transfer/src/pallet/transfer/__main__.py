from pallet.transfer.cli import main

raise SystemExit(main())
