"""The console in a browser (``gpuconsole serve``).

A small aiohttp server hands each browser tab its own ``gpuconsole`` process running under
Textual's web driver, and relays the tab's websocket to it — the same console, keys and screens as
in a terminal. The browser side is textual-serve's terminal (xterm.js); its Python server is not
used, because the console needs what it lacks: a token turned into a cookie, an Origin check, a
session limit, processes that end with their tab, and an access log that never writes the token.

Nothing here imports Textual: the server only relays bytes; the app runs in the child process.
"""
