"""One module per subcommand of pallet-build.

COMMANDS maps a subcommand's name to its module and a one-line summary. A
command module has ``USAGE`` (what follows the command name in its usage
line), ``add_arguments(parser)`` and ``run(args, globals_)`` (which may return
the exit status); it imports only the standard library and pallet.build.cli at
module level: the libraries it calls are imported inside ``run``, so start-up
stays light.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "images": ("images", "List images in local storage"),
    "unshare": ("unshare", "Run a command in a modified user namespace"),
}
