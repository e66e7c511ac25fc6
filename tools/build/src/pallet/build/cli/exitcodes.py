"""Exit codes of pallet-build, as buildah uses them."""

SUCCESS = 0
# buildah's conventions: 125 for its own failures, or the exit status of a failed RUN step.
FAILURE = 125
USAGE = 125
INTERRUPTED = 130
