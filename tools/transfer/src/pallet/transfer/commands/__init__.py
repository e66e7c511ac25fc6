"""One module per subcommand of pallet-transfer.

COMMANDS maps a subcommand's name to its module and a one-line summary. A
command module has ``USAGE`` (what follows the command name in its usage
line), ``add_arguments(parser)`` and ``run(args, globals_)``; it imports
only the standard library and pallet.transfer.cli at module level: the
libraries it calls are imported inside ``run``, so start-up stays light.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "copy": ("copy", "Copy an IMAGE-NAME from one location to another"),
    "delete": ("delete", "Delete image IMAGE-NAME"),
    "inspect": ("inspect", "Inspect image IMAGE-NAME"),
    "login": ("login", "Login to a container registry"),
    "logout": ("logout", "Logout of a container registry"),
    "sync": ("sync", "Synchronize one or more images from one location to another"),
    "list-tags": ("list_tags", "List tags in the transport/repository specified by the REPOSITORY-NAME"),
    "manifest-digest": ("manifest_digest", "Compute a manifest digest of a file"),
}
