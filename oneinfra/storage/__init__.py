"""What the daemon keeps on disk beside the event store: the data keys
(keystore, wrapped by the master key) and the log read back by position
(logreader). The choice of a store backend by URL goes here too.

Imports the model (the events it decodes) and the PKI, never the layers
above.
"""
