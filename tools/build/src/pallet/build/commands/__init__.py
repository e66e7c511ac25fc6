"""One module per subcommand of pallet-build.

COMMANDS maps a subcommand's name to the module that defines it (a function
named ``command``) and a one-line summary; cli.app registers them. The table
is empty until the issues that bring the subcommands.
"""

COMMANDS: dict[str, tuple[str, str]] = {}
