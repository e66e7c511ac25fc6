"""Running the lifecycle hooks of a config: each gets the container's state JSON on stdin.

Where each stage runs (the runtime spec's rules): ``prestart`` (deprecated),
``createRuntime``, ``poststart`` and ``poststop`` in the runtime's namespaces,
run by the runtime; ``createContainer`` (before pivot_root) and
``startContainer`` (after the start signal, before the program) in the
container's namespaces, run by the container process. A failing hook of the
first four stages before the program runs is an error that stops the
container; ``poststart`` and ``poststop`` failures are only warnings
(:func:`run_hooks` returns their messages).
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from pallet.oci.spec.runtime import Hook, Hooks
from pallet.runtime.errors import HookFailed

# config stage name (snake_case attribute) -> the spec's name, for messages
STAGES = {
    "prestart": "prestart", "create_runtime": "createRuntime", "create_container": "createContainer",
    "start_container": "startContainer", "poststart": "poststart", "poststop": "poststop",
}


def hooks_of(hooks: Hooks | None, *stages: str) -> tuple[tuple[str, Hook], ...]:
    """The hooks of ``stages`` (snake_case names), in order, each with its stage's spec name."""
    if hooks is None:
        return ()
    return tuple((STAGES[stage], hook) for stage in stages for hook in getattr(hooks, stage) or ())


def run_hook(stage: str, hook: Hook, state: dict[str, Any]) -> None:
    argv = list(hook.args) if hook.args else [hook.path]
    env = dict(item.partition("=")[::2] for item in hook.env or ())
    try:
        result = subprocess.run(argv, executable=hook.path, input=json.dumps(state).encode(), env=env,
                                capture_output=True, timeout=hook.timeout)
    except subprocess.TimeoutExpired:
        raise HookFailed(stage, hook.path, f"timed out after {hook.timeout} s") from None
    except OSError as error:
        raise HookFailed(stage, hook.path, error.strerror or str(error)) from None
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip().splitlines()
        why = f"exit status {result.returncode}" + (f": {detail[-1]}" if detail else "")
        raise HookFailed(stage, hook.path, why)


def run_hooks(staged: tuple[tuple[str, Hook], ...], state: dict[str, Any], *, warn_only: bool = False) -> list[str]:
    """Run ``staged`` hooks in order; the first failure raises HookFailed, or with ``warn_only``
    every failure is collected and returned as a message."""
    warnings = []
    for stage, hook in staged:
        try:
            run_hook(stage, hook, state)
        except HookFailed as error:
            if not warn_only:
                raise
            warnings.append(str(error))
    return warnings
