"""The keys of the Run, Replay and Runs screens, in the console's key registry (console/keys.py),
so that `?`, the footer, remapping and `--readonly` know them like every other key."""

from __future__ import annotations

from console.keys import declare

# -- one run ---------------------------------------------------------------------------------
declare("run.expand", "enter", "expand", "Attempts", show=False)
declare("run.panel", "i", "panel", "Inspector/history", show=False)
declare("run.retry", "r", "retry", "Retry", writes=True)
declare("run.retry_edited", "e", "retry_edited", "Retry edited", writes=True, show=False)
declare("run.skip", "s", "skip", "Skip", writes=True, show=False)
declare("run.pause", "P", "pause", "Pause/resume", writes=True)
declare("run.cancel", "x", "cancel", "Cancel", writes=True)
declare("run.abandon", "X", "abandon", "Abandon", writes=True, show=False)
declare("run.fork", "f", "fork", "Fork", writes=True)
declare("run.fork_edited", "F", "fork_edited", "Fork edited", writes=True, show=False)
declare("run.approve", "y", "decide(True)", "Approve", writes=True, show=False)
declare("run.reject", "n", "decide(False)", "Reject", writes=True, show=False)
declare("run.again", "full_stop", "again", "Send again", writes=True, show=False)
declare("run.replay", "R", "replay", "Replay")

# -- replay ----------------------------------------------------------------------------------
declare("replay.next", "right", "step(1)", "Next")
declare("replay.previous", "left", "step(-1)", "Previous")
declare("replay.first", "home", "first", "First", show=False)
declare("replay.last", "end", "last", "Last", show=False)
declare("replay.play", "space", "play", "Play/stop")
declare("replay.faster", "plus", "speed(1)", "Faster", show=False)
declare("replay.slower", "minus", "speed(-1)", "Slower", show=False)
declare("replay.fork", "f", "fork", "Fork here", writes=True)
declare("replay.panel", "i", "panel", "Context/event", show=False)

# -- runs ------------------------------------------------------------------------------------
declare("runs.open", "enter", "open", "Open", show=False)
declare("runs.mark", "space", "mark", "Mark")
declare("runs.mark_all", "ctrl+a", "mark_all", "Mark all shown", show=False)
declare("runs.sort", "o", "sort", "Sort")
declare("runs.reverse", "O", "reverse", "Reverse order", show=False)
declare("runs.cancel", "x", "bulk('cancel')", "Cancel", writes=True)
declare("runs.abandon", "X", "bulk('abandon')", "Abandon", writes=True, show=False)
declare("runs.pause", "P", "bulk('pause')", "Pause", writes=True)
declare("runs.resume", "U", "bulk('resume')", "Resume", writes=True)
declare("runs.fork", "f", "bulk('fork')", "Fork", writes=True, show=False)
