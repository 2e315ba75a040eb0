"""Local stand-ins for the marketplaces and carriers: the same paths, envelopes, signatures and failures."""
