"""The pure state machine of a run: (state, event) -> (state', commands). No I/O, no clock."""
