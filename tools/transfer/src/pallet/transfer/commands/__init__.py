"""One module per subcommand of pallet-transfer.

COMMANDS maps a subcommand's name to the module that defines it (a function
named ``command``) and a one-line summary; cli.app registers them. Command
modules import only typer at module level: the libraries they call are
imported inside the command, so start-up stays light.
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
