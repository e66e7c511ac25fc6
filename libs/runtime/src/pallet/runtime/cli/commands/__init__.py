"""One module per subcommand of pallet-runtime: ``add_arguments(parser)`` and ``run(args, runtime)``."""
