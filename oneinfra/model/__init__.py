"""The fleet's model, pure: what people ask for (commands), what was decided
(events), the rules that decide (decider), the desired state the events fold
into (state, projection), and placement, validation and the versions
oneinfra runs.

No I/O, no clock, no randomness but what a caller passes in. Imports only
the PKI (certificates are part of what is decided) and oneinfra's errors.
"""
