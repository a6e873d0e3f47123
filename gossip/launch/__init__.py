"""Launching real peers: ``gossip peer`` and ``gossip launch`` (local, ssh hostfile, Slurm,
MPI, torchrun), peer lists, CURVE keys, and the run's final report (assembly layer)."""
