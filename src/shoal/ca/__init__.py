"""The swarm's root CA, node certificates, TLS contexts and join tokens: used by managers
and by joining nodes."""
