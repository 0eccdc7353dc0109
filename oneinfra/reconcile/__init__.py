"""The reconciler: drives every hypervisor towards the desired state, and
tells how far each cluster is.

Pure: the plan (desired versus observed pods), the phases, the etcd
membership steps, whom an event concerns (triggers). Stateful: the status
board, the work queue. The loops: one worker per hypervisor (hypervisors,
with one pass in hypervisor_pass) and per cluster (clusters), put together
by the controller. Backups, and what runs inside managed clusters (worker
join, add-ons), become more loops here.

Imports the runtime (CRI), the rendering, the storage and the model; never
the daemon or the CLI: the daemon hands it the fleet (fleet.Fleet).
"""
