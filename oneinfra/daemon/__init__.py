"""The daemon: the command worker that decides and appends (service), the
gRPC API on a Unix socket (api, served on a thread of its own: apithread;
callers' identities: callers; messages: messages), the hand-over to the
main loop (mainloop), the garbage collector's policy (gc), and its life
from start to SIGTERM (main, the composition root). Metrics and backups
become more runnables here.

Imports every layer below it; the CLI never imports it.
"""
