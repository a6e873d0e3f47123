"""gossip-train: decentralized deep learning in JAX."""
