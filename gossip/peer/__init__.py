"""The real peer (a driver): the round loop over ZeroMQ, its inbox, membership and
checkpoints."""
