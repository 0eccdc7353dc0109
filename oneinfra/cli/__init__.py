"""The `oneinfra` command line as a client of the daemon's socket: the
parser (every command and help line), the client commands, their output,
--wait's progress, shell completion, and the local hypervisors' commands.

Imports the generated API, the model's names, the errors and the local
hypervisors; never the daemon's, the reconciler's or the runtime's modules
(an import contract checks it). The entry point is oneinfra.main.
"""
