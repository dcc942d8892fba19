"""`python -m haorui_async.testing --host 127.0.0.1 --port 0 [fault options]`: the emulator
in the foreground; prints `listening on http://HOST:PORT` once it accepts connections."""

from __future__ import annotations

from ._cli import main

if __name__ == "__main__":
    main()
