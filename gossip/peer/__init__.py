"""Real peers: the round loop over ZeroMQ, the peer list, and the launchers (local, ssh)."""
